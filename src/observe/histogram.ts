/**
 * Upper bounds of the duration buckets, in milliseconds (exposed in seconds, Prometheus's base unit): a
 * 1-2.5-5 ladder from 1 ms to 10 s, which covers RPC latencies from a loopback hop to a slow batch call.
 * Prometheus's client defaults (5 ms to 10 s) start too late for in-datacentre calls.
 */
export const DURATION_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

const BOUNDS = DURATION_BOUNDS_MS;
const N = BOUNDS.length;

/**
 * A fixed-bucket duration histogram, cheap enough for the call path: `observe` is a short loop from the
 * lowest bound (most RPCs land in the first few buckets, so it beats a binary search there), one array
 * increment and one addition; nothing is allocated. Counts are per bucket, made cumulative at scrape time.
 */
export class Histogram {
  /** Observations per bucket (not cumulative); the last slot is the `+Inf` bucket. */
  readonly counts = new Float64Array(N + 1);
  /** Sum of every observation, in ms. */
  sumMs = 0;

  /** Records one duration in ms. */
  observe(ms: number): void {
    let i = 0;
    while (i < N && ms > BOUNDS[i]!) i++;
    this.counts[i]!++;
    this.sumMs += ms;
  }
}
