import { TextSink } from './exposition-text.js';
import { DURATION_BOUNDS_MS } from './histogram.js';
import type { MetricFamily } from './metric-families.js';

/**
 * A bucket bound as OpenMetrics's "Canonical Numbers" want an `le` value: Go's `%g` with `.0` added when it has
 * no decimal point or exponent (`0.001`, `0.0025`, `1.0`, `10.0`), as client_golang writes OpenMetrics.
 */
export function canonicalLe(seconds: number): string {
  const s = String(seconds);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

const LE_OPENMETRICS = DURATION_BOUNDS_MS.map((ms) => canonicalLe(ms / 1_000));

/**
 * Writes OpenMetrics 1.0 text: per family `# TYPE`, `# UNIT` (for `_seconds` families) and `# HELP` (backslash,
 * line feed and double quote escaped), in the order the spec recommends; a counter's family is named without
 * `_total` and its samples with it; histogram buckets carry canonical `le` values; `# EOF` ends it.
 * Label values escape as in 0.0.4. No `_created` samples (they are optional, and the mesh keeps no start time
 * per series).
 */
export class OpenMetricsSink extends TextSink {
  constructor() {
    super(LE_OPENMETRICS);
  }

  override family(f: MetricFamily): void {
    this.name = f.name;
    const name = f.type === 'counter' ? f.name.replace(/_total$/, '') : f.name;
    const help = f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
    this.out += `# TYPE ${name} ${f.type}\n${f.unit === undefined ? '' : `# UNIT ${name} ${f.unit}\n`}# HELP ${name} ${help}\n`;
  }

  /** The exposition, terminated by `# EOF`. */
  override text(): string {
    return `${this.out}# EOF\n`;
  }
}
