/**
 * What the demo measures, by itself: every attempt per endpoint (from the mesh's `request`, `success` and `failure`
 * events, whose `durationMs` is the attempt as this process timed it) and every call as the caller saw it, each
 * stamped with its second since the start. From these: p50/p99 per endpoint over the run, shares over a window,
 * and the per-second series the chart draws.
 */
import type { ChartSeries, DemoChart } from './demo-chart.js';

/** Nearest-rank quantile of sorted values (p99 of 100 values is the 99th); null when there are none. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

interface Samples {
  /** Second since the start of each sample. */
  readonly at: number[];
  readonly ms: number[];
}

const samples = (): Samples => ({ at: [], ms: [] });

export class DemoRecorder {
  private readonly started: Map<string, number[]>;
  private readonly ended: Map<string, Samples>;
  private readonly calls = samples();

  /** `names` in the order tables and the chart show them; `now()` is seconds since the start. */
  constructor(
    readonly names: readonly string[],
    private readonly now: () => number,
  ) {
    this.started = new Map(names.map((n) => [n, []]));
    this.ended = new Map(names.map((n) => [n, samples()]));
  }

  /** An attempt started on endpoint `name`. */
  attempt(name: string): void {
    this.started.get(name)?.push(this.now());
  }

  /** An attempt on `name` ended after `durationMs` (a success or a failure). */
  attemptEnded(name: string, durationMs: number): void {
    const s = this.ended.get(name);
    if (s === undefined) return;
    s.at.push(this.now());
    s.ms.push(durationMs);
  }

  /** A call ended after `durationMs`, as the caller timed it. */
  call(durationMs: number): void {
    this.calls.at.push(this.now());
    this.calls.ms.push(durationMs);
  }

  /** p50 and p99 of the attempts on `name` over the whole run, in ms. */
  latency(name: string): { readonly p50: number | null; readonly p99: number | null } {
    return percentiles(this.ended.get(name)?.ms ?? []);
  }

  /** p50 and p99 of the calls over the whole run, in ms. */
  callLatency(): { readonly p50: number | null; readonly p99: number | null } {
    return percentiles(this.calls.ms);
  }

  /** `name`'s share of the attempts started in [fromS, toS); null when there were none. */
  share(name: string, fromS: number, toS: number): { readonly share: number | null; readonly attempts: number } {
    const inWindow = (n: string): number => (this.started.get(n) ?? []).filter((t) => t >= fromS && t < toS).length;
    const all = this.names.reduce((sum, n) => sum + inWindow(n), 0);
    return { share: all === 0 ? null : inWindow(name) / all, attempts: all };
  }

  /** The per-second series of the run, for {@link chartSvg}. */
  chart(title: string, durationS: number, markers: DemoChart['markers'] = []): DemoChart {
    const seconds = Math.max(1, Math.ceil(durationS - 1e-9));
    const bucket = (t: number): number => Math.min(seconds - 1, Math.floor(t));
    const perSecond = (s: Samples): { p50: (number | null)[]; p99: (number | null)[] } => {
      const by: number[][] = Array.from({ length: seconds }, () => []);
      s.at.forEach((t, i) => by[bucket(t)]!.push(s.ms[i]!));
      const qs = by.map((values) => percentiles(values));
      return { p50: qs.map((q) => q.p50), p99: qs.map((q) => q.p99) };
    };
    const counts = new Map(this.names.map((n) => [n, new Array<number>(seconds).fill(0)]));
    for (const [n, at] of this.started) for (const t of at) counts.get(n)![bucket(t)]!++;
    const totals = Array.from({ length: seconds }, (_, i) => this.names.reduce((sum, n) => sum + counts.get(n)![i]!, 0));
    const endpoints: ChartSeries[] = this.names.map((name) => ({
      name,
      share: counts.get(name)!.map((c, i) => (totals[i] === 0 ? null : c / totals[i]!)),
      ...perSecond(this.ended.get(name)!),
    }));
    return { title, seconds, endpoints, calls: perSecond(this.calls), markers };
  }
}

function percentiles(values: readonly number[]): { readonly p50: number | null; readonly p99: number | null } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
}
