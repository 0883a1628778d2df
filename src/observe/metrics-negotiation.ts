import { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, type MetricsFormat } from './exposition-sink.js';

/** The exposition a scraper asked for, and the `Content-Type` to answer with. */
export interface NegotiatedFormat {
  readonly format: MetricsFormat;
  readonly contentType: string;
}

const TEXT: NegotiatedFormat = { format: 'prometheus', contentType: PROMETHEUS_CONTENT_TYPE };
const OPENMETRICS_1: NegotiatedFormat = { format: 'openmetrics', contentType: OPENMETRICS_CONTENT_TYPE };
const OPENMETRICS_0: NegotiatedFormat = { format: 'openmetrics', contentType: 'application/openmetrics-text; version=0.0.1; charset=utf-8' };

/**
 * Picks the exposition format for an `Accept` header, as Prometheus's client_golang does
 * (`expfmt.NegotiateIncludingOpenMetrics`): media ranges by descending `q` (ties keep their order; `q=0` is
 * never chosen), and the first that is `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) or
 * `text/plain` (version 0.0.4 or none) wins; anything else, `*\/*` or no header gives the text format 0.0.4.
 * A request for OpenMetrics 0.0.1 is answered with that version in the `Content-Type` (the text is the same).
 * @example negotiateMetricsFormat('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5').format // 'openmetrics'
 */
export function negotiateMetricsFormat(accept: string | readonly string[] | undefined): NegotiatedFormat {
  const header = Array.isArray(accept) ? accept.join(',') : accept;
  if (typeof header !== 'string' || header === '') return TEXT;
  const ranges: { type: string; version: string | undefined; q: number; i: number }[] = [];
  const parts = header.split(',');
  for (let i = 0; i < parts.length && i < 64; i++) {
    const [type = '', ...params] = parts[i]!.split(';');
    let q = 1;
    let version: string | undefined;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0) continue;
      const key = param.slice(0, eq).trim().toLowerCase();
      const value = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (key === 'q') q = Number(value);
      else if (key === 'version') version = value;
    }
    if (!(q > 0)) continue; // q=0 is "not acceptable"; a malformed q is ignored with its range
    ranges.push({ type: type.trim().toLowerCase(), version, q: Math.min(q, 1), i });
  }
  ranges.sort((a, b) => b.q - a.q || a.i - b.i);
  for (const { type, version } of ranges) {
    if (type === 'application/openmetrics-text') {
      if (version === undefined || version === '1.0.0') return OPENMETRICS_1;
      if (version === '0.0.1') return OPENMETRICS_0;
    } else if (type === 'text/plain' && (version === undefined || version === '0.0.4')) {
      return TEXT;
    }
  }
  return TEXT;
}
