import type { Histogram } from './histogram.js';
import type { MetricFamily } from './metric-families.js';

/**
 * The seam between the metrics model (prometheus.ts walks the services once) and its serialisations: the text
 * format 0.0.4, OpenMetrics 1.0, and prom-client's collect path. The renderer declares each family once, then
 * feeds its samples; a sink writes or gathers them for the family declared last.
 */
export interface ExpositionSink {
  /** Starts a family: its samples follow, and no other family's until the next call. */
  family(f: MetricFamily): void;
  /** One sample of the current family: `labels`, plus one more label `extraName="extraValue"` when given. */
  sample(labels: LabelSet, value: number, extraName?: string, extraValue?: string): void;
  /** One histogram of the current family (its `_bucket`, `_sum` and `_count` samples). */
  histogram(labels: LabelSet, h: Histogram): void;
}

/** A label value, escaped as both text formats want: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

/**
 * An ordered label set, built once per mesh, service, endpoint or route for a scrape (never per sample): its
 * names and raw values (prom-client wants an object) and its escaped `a="x",b="y"` text (both text formats
 * escape label values alike).
 */
export class LabelSet {
  static readonly EMPTY = new LabelSet([], [], '');

  private constructor(
    readonly names: readonly string[],
    readonly values: readonly string[],
    /** `a="x",b="y"`, escaped; '' for no label. */
    readonly text: string,
  ) {}

  /** This set with one more label at the end. */
  with(name: string, value: string): LabelSet {
    const pair = `${name}="${escapeLabelValue(value)}"`;
    return new LabelSet([...this.names, name], [...this.values, value], this.text === '' ? pair : `${this.text},${pair}`);
  }

  /** A fresh plain object of the labels (prom-client's `labels`), in order, with one more when given. */
  object(extraName?: string, extraValue?: string): Record<string, string> {
    const o: Record<string, string> = {};
    for (let i = 0; i < this.names.length; i++) o[this.names[i]!] = this.values[i]!;
    if (extraName !== undefined) o[extraName] = extraValue!;
    return o;
  }
}

/** What `mesh.metrics({ format })` and `renderMeshMetrics` write: the text format 0.0.4, or OpenMetrics 1.0. */
export type MetricsFormat = 'prometheus' | 'openmetrics';

/** Options of `mesh.metrics()` and `renderMeshMetrics`. */
export interface MetricsOptions {
  /**
   * `'prometheus'` (the default): the text exposition format 0.0.4. `'openmetrics'`: OpenMetrics 1.0 text,
   * ending in `# EOF`, counters' families named without `_total` and their samples with it.
   */
  format?: MetricsFormat | undefined;
}

/** The `Content-Type` of the text exposition format 0.0.4 (prom-client's `Registry.PROMETHEUS_CONTENT_TYPE`). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** The `Content-Type` of OpenMetrics 1.0 text (prom-client's `Registry.OPENMETRICS_CONTENT_TYPE`). */
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** The format `options` ask for; a `TypeError` naming `at` and the option for anything else. */
export function metricsFormat(options: unknown, at: string): MetricsFormat {
  if (options === undefined) return 'prometheus';
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${at}: options must be an object such as { format: 'openmetrics' }`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'format') throw new TypeError(`${at}: unknown option ${JSON.stringify(key)} (known: format)`);
  }
  const format = (options as { format?: unknown }).format;
  if (format === undefined || format === 'prometheus' || format === 'openmetrics') return format ?? 'prometheus';
  throw new TypeError(`${at}: format must be 'prometheus' or 'openmetrics', got ${JSON.stringify(format)}`);
}
