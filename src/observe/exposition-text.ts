import { escapeLabelValue, type ExpositionSink, type LabelSet } from './exposition-sink.js';
import { DURATION_BOUNDS_MS, type Histogram } from './histogram.js';
import type { MetricFamily } from './metric-families.js';

/** A sample value: Go's float syntax, with `+Inf`, `-Inf` and `NaN` spelled as both text formats want. */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/** `labels` plus the extra label, as the text between the braces. */
export function labelText(labels: LabelSet, extraName: string | undefined, extraValue: string | undefined): string {
  if (extraName === undefined) return labels.text;
  const pair = `${extraName}="${escapeLabelValue(extraValue!)}"`;
  return labels.text === '' ? pair : `${labels.text},${pair}`;
}

/** `le` values in the 0.0.4 style (JavaScript's shortest float: `1`, `2.5`), as Prometheus's Go clients write them. */
const LE_TEXT = DURATION_BOUNDS_MS.map((ms) => String(ms / 1_000));

/**
 * Writes the text exposition format 0.0.4 (what `mesh.metrics()` has always written): `# HELP` (backslash and
 * line feed escaped) and `# TYPE` per family, then its samples, one line each.
 */
export class TextSink implements ExpositionSink {
  protected out = '';
  protected name = '';

  constructor(protected readonly le: readonly string[] = LE_TEXT) {}

  family(f: MetricFamily): void {
    this.name = f.name;
    this.out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n`;
  }

  sample(labels: LabelSet, value: number, extraName?: string, extraValue?: string): void {
    this.line(this.name, labelText(labels, extraName, extraValue), value);
  }

  /** `_bucket` (cumulative, `le` in seconds), `_sum` (seconds) and `_count` samples of one histogram. */
  histogram(labels: LabelSet, h: Histogram): void {
    const bucket = `${this.name}_bucket`;
    const prefix = labels.text === '' ? '' : `${labels.text},`;
    const le = this.le;
    let cumulative = 0;
    for (let i = 0; i < le.length; i++) {
      cumulative += h.counts[i]!;
      this.line(bucket, `${prefix}le="${le[i]}"`, cumulative);
    }
    cumulative += h.counts[le.length]!;
    this.line(bucket, `${prefix}le="+Inf"`, cumulative);
    this.line(`${this.name}_sum`, labels.text, h.sumMs / 1_000);
    this.line(`${this.name}_count`, labels.text, cumulative);
  }

  /** The exposition written so far. */
  text(): string {
    return this.out;
  }

  protected line(name: string, labels: string, value: number): void {
    this.out += labels === '' ? `${name} ${formatValue(value)}\n` : `${name}{${labels}} ${formatValue(value)}\n`;
  }
}
