/**
 * The demo's chart: one SVG file, written as text (no browser, no dependency), with two panels over the run, one
 * point per second: each endpoint's share of the attempts, and the attempt latency per endpoint (p50 solid, p99
 * dashed, log scale, since 2 ms and 85 ms must both be readable), with the calls' latency as the caller saw it.
 * Vertical markers note events (flaky died, flaky ejected). Names are escaped: any string can be an endpoint name.
 */

/** One endpoint's values, one per second of the run; null where that second had no attempt. */
export interface ChartSeries {
  readonly name: string;
  /** Share of the second's attempts, 0 to 1. */
  readonly share: readonly (number | null)[];
  /** Attempt latency in ms, as the mesh's `success`/`failure` events timed it. */
  readonly p50: readonly (number | null)[];
  readonly p99: readonly (number | null)[];
  /** Shown after the name in the legend (the run's totals, say). */
  readonly note?: string;
}

/** What {@link chartSvg} draws. Second `i` covers [i, i + 1) s since the start. */
export interface DemoChart {
  readonly title: string;
  /** Seconds in the run (the length of every series). */
  readonly seconds: number;
  readonly endpoints: readonly ChartSeries[];
  /** The calls' latency as the caller saw it (retries included), per second. */
  readonly calls?: { readonly p50: readonly (number | null)[]; readonly p99: readonly (number | null)[] };
  /** Moments to mark with a vertical line, in seconds since the start. */
  readonly markers?: readonly { readonly atS: number; readonly label: string }[];
}

const COLORS = ['#3867d6', '#2f9e62', '#e08a00', '#d64545', '#8e5bd6', '#8c564b', '#d6479c', '#17a2b8'];
const CALLS_COLOR = '#1d2430';
const W = 1060;
const LEFT = 78;
const PLOT_W = 660; // the legend takes the right side
const SHARE = { top: 64, height: 220 };
const LATENCY = { top: 356, height: 240 };
const H = LATENCY.top + LATENCY.height + 64;
const LOG_TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000];

/** What XML 1.0 forbids outright (not even as `&#1;`): C0 controls but tab/LF/CR, U+FFFE/U+FFFF, lone surrogates. */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * Escapes text for an XML text node or a double-quoted attribute; a character XML cannot hold at all becomes
 * U+FFFD, so that any name leaves the document well-formed.
 */
export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML_CHAR, '\uFFFD')
    .replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]!};`);
}

const f = (n: number): string => n.toFixed(1);

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${f(x)}" y="${f(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(content)}</text>`;
}

/** A line through the points, broken where a value is missing; a dot on each point so a lone second shows too. */
function series(values: readonly (number | null)[], x: (i: number) => number, y: (v: number) => number, line: { color: string; width?: number; dashed?: boolean; dots?: boolean }): string {
  const { color, width = 2, dashed = false, dots = false } = line;
  let d = '';
  let pen = false;
  const circles: string[] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) return void (pen = false);
    d += `${pen ? 'L' : 'M'}${f(x(i))} ${f(y(v))} `;
    pen = true;
    if (dots) circles.push(`<circle cx="${f(x(i))}" cy="${f(y(v))}" r="2.5" fill="${color}"/>`);
  });
  const dash = dashed ? ' stroke-dasharray="6 4"' : '';
  return d === '' ? '' : `<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="${width}"${dash}/>${circles.join('')}`;
}

function check(chart: DemoChart): void {
  if (!(Number.isInteger(chart.seconds) && chart.seconds >= 1)) throw new TypeError(`chart.seconds must be an integer >= 1, got ${chart.seconds}`);
  const lengths = [...chart.endpoints.flatMap((e) => [e.share, e.p50, e.p99]), ...(chart.calls ? [chart.calls.p50, chart.calls.p99] : [])];
  if (lengths.some((s) => s.length !== chart.seconds)) throw new TypeError(`chart series must have chart.seconds (${chart.seconds}) values each`);
}

/**
 * The chart as SVG text, a standalone document (`<?xml ...?>` and an `<svg>` root) that browsers and image viewers
 * open.
 *
 * @example
 * writeFileSync('/tmp/demo.svg', chartSvg({ title: 'demo', seconds: 2, endpoints: [{ name: 'a', share: [1, 1], p50: [2, 3], p99: [5, 6] }] }));
 */
export function chartSvg(chart: DemoChart): string {
  check(chart);
  const n = chart.seconds;
  const x = (i: number): number => LEFT + ((i + 0.5) / n) * PLOT_W; // a second's point sits in its middle
  const xAt = (s: number): number => LEFT + (Math.min(Math.max(s, 0), n) / n) * PLOT_W;
  const out: string[] = [];
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(text(LEFT, 28, chart.title, 'font-size="17" font-weight="600"'));

  // The time axis, under both panels.
  const step = n <= 20 ? 1 : n <= 60 ? 5 : 10;
  const timeAxis = (top: number, height: number): string[] => {
    const bottom = top + height;
    const parts = [`<line x1="${LEFT}" y1="${bottom}" x2="${LEFT + PLOT_W}" y2="${bottom}" stroke="#667085"/>`];
    for (let s = 0; s <= n; s += step) {
      parts.push(`<line x1="${f(xAt(s))}" y1="${bottom}" x2="${f(xAt(s))}" y2="${bottom + 5}" stroke="#667085"/>`);
      parts.push(text(xAt(s), bottom + 18, `${s}`, 'text-anchor="middle" font-size="11" fill="#475467"'));
    }
    parts.push(text(LEFT + PLOT_W / 2, bottom + 36, 'time since start, s', 'text-anchor="middle" font-size="12" fill="#475467"'));
    return parts;
  };
  const yLabel = (top: number, height: number, label: string): string =>
    text(22, top + height / 2, label, `text-anchor="middle" font-size="12" fill="#475467" transform="rotate(-90 22 ${f(top + height / 2)})"`);
  const grid = (y: number, label: string): string[] => [
    `<line x1="${LEFT}" y1="${f(y)}" x2="${LEFT + PLOT_W}" y2="${f(y)}" stroke="#eef1f5"/>`,
    text(LEFT - 8, y + 4, label, 'text-anchor="end" font-size="11" fill="#475467"'),
  ];
  const markers = (top: number, height: number, labelled: boolean): string[] =>
    (chart.markers ?? []).flatMap((m, i) => [
      `<line x1="${f(xAt(m.atS))}" y1="${top}" x2="${f(xAt(m.atS))}" y2="${top + height}" stroke="#98a2b3" stroke-dasharray="3 3"/>`,
      ...(labelled ? [text(xAt(m.atS) + 4, top + 12 + 13 * i, m.label, 'font-size="11" fill="#475467"')] : []),
    ]);

  // Panel 1: share of attempts.
  const shareY = (v: number): number => SHARE.top + SHARE.height * (1 - Math.min(Math.max(v, 0), 1));
  out.push(text(LEFT, SHARE.top - 12, 'Share of attempts per endpoint, per second', 'font-size="13" font-weight="600"'));
  for (const p of [0, 0.25, 0.5, 0.75, 1]) out.push(...grid(shareY(p), `${p * 100}%`));
  out.push(yLabel(SHARE.top, SHARE.height, 'share of attempts, %'));
  out.push(...markers(SHARE.top, SHARE.height, true));
  chart.endpoints.forEach((e, i) => out.push(series(e.share, x, shareY, { color: COLORS[i % COLORS.length]!, dots: true })));
  out.push(...timeAxis(SHARE.top, SHARE.height));

  // Panel 2: latency, log scale over the range of the values.
  const values = [...chart.endpoints.flatMap((e) => [...e.p50, ...e.p99]), ...(chart.calls ? [...chart.calls.p50, ...chart.calls.p99] : [])].filter(
    (v): v is number => v !== null && Number.isFinite(v) && v > 0,
  );
  const lo = Math.max(...LOG_TICKS.filter((t) => t <= Math.min(...values, 1)), LOG_TICKS[0]!);
  const hi = Math.min(...LOG_TICKS.filter((t) => t >= Math.max(...values, 10)), LOG_TICKS.at(-1)!);
  const latencyY = (v: number): number => {
    const r = (Math.log(Math.min(Math.max(v, lo), hi)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
    return LATENCY.top + LATENCY.height * (1 - r);
  };
  out.push(text(LEFT, LATENCY.top - 12, 'Latency per second: p50 (solid) and p99 (dashed) of the attempts per endpoint, and of the calls', 'font-size="13" font-weight="600"'));
  for (const t of LOG_TICKS.filter((t) => t >= lo && t <= hi)) out.push(...grid(latencyY(t), `${t} ms`));
  out.push(yLabel(LATENCY.top, LATENCY.height, 'latency, ms (log scale)'));
  out.push(...markers(LATENCY.top, LATENCY.height, false));
  chart.endpoints.forEach((e, i) => {
    const color = COLORS[i % COLORS.length]!;
    out.push(series(e.p50, x, latencyY, { color, dots: true }), series(e.p99, x, latencyY, { color, dashed: true }));
  });
  if (chart.calls) {
    out.push(series(chart.calls.p50, x, latencyY, { color: CALLS_COLOR, width: 1.5 }));
    out.push(series(chart.calls.p99, x, latencyY, { color: CALLS_COLOR, width: 1.5, dashed: true }));
  }
  out.push(...timeAxis(LATENCY.top, LATENCY.height));

  // The legend: endpoint names, then the line styles.
  const lx = LEFT + PLOT_W + 28;
  out.push(text(lx, SHARE.top + 4, 'endpoints', 'font-size="12" font-weight="600"'));
  chart.endpoints.forEach((e, i) => {
    const y = SHARE.top + 24 + 34 * i;
    out.push(`<line x1="${lx}" y1="${y - 4}" x2="${lx + 24}" y2="${y - 4}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"/>`);
    out.push(text(lx + 32, y, e.name, 'font-size="12" font-weight="600" class="legend-name"'));
    if (e.note !== undefined) out.push(text(lx + 32, y + 14, e.note, 'font-size="11" fill="#475467"'));
  });
  const ky = Math.max(LATENCY.top + 4, SHARE.top + 34 * chart.endpoints.length + 40); // below the names, however many
  out.push(text(lx, ky, 'latency lines', 'font-size="12" font-weight="600"'));
  out.push(`<line x1="${lx}" y1="${ky + 16}" x2="${lx + 24}" y2="${ky + 16}" stroke="#475467" stroke-width="2"/>`, text(lx + 32, ky + 20, 'p50', 'font-size="12"'));
  out.push(`<line x1="${lx}" y1="${ky + 36}" x2="${lx + 24}" y2="${ky + 36}" stroke="#475467" stroke-width="2" stroke-dasharray="6 4"/>`, text(lx + 32, ky + 40, 'p99', 'font-size="12"'));
  if (chart.calls) {
    out.push(`<line x1="${lx}" y1="${ky + 56}" x2="${lx + 24}" y2="${ky + 56}" stroke="${CALLS_COLOR}" stroke-width="1.5"/>`);
    out.push(text(lx + 32, ky + 60, 'calls, as the caller saw them', 'font-size="12"'));
  }

  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" fill="#1d2430">`,
    `<title>${escapeXml(chart.title)}</title>`,
    ...out.filter((s) => s !== ''),
    '</svg>',
    '',
  ].join('\n');
}
