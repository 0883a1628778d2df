/**
 * Option checks shared by `consulRegistry` and `consulConfig`: the blocking-query loop's timing and plain text
 * values. Each error names the option by its full path (`consulConfig.backoff.maxMs must be ...`).
 */

/** Consul caps `wait` at 10 minutes (agent/http.go parseWait). */
const MAX_WAIT_MS = 600_000;
/** wait × 17/16 must stay below undici's default headersTimeout (300 s) of Node's built-in fetch. */
const MAX_WAIT_WITH_BUILTIN_FETCH_MS = 280_000;

/** The loop options both take. */
export interface BlockingLoopOptions {
  /**
   * How long one blocking query may wait for a change (Consul allows up to 10 min, and adds up to wait/16).
   * Default 60000. With Node's built-in fetch at most 280000: undici's `headersTimeout` is 300 s, and Consul sends
   * the headers only when the query returns (pass a `fetch` whose dispatcher allows more to go higher).
   * @example 30_000
   */
  waitMs?: number | undefined;
  /** Under churn, at most one blocking query per this interval, per loop, after a burst of 2. Default 250. @example 1_000 */
  minIntervalMs?: number | undefined;
  /** Retry delays of a failing query: doubling from `initialMs`, ±20 % jitter, up to `maxMs`. Default 1000 / 30000. */
  backoff?: {
    /** First retry delay, in ms. */
    initialMs?: number | undefined;
    /** Longest retry delay, in ms. */
    maxMs?: number | undefined;
  } | undefined;
}

/** The loop options resolved. */
export interface BlockingLoopSettings {
  readonly waitMs: number;
  readonly minIntervalMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
}

/** Checks and resolves the loop options; `ownFetch` lifts the cap that Node's built-in fetch imposes on `waitMs`. */
export function blockingLoopSettings(o: BlockingLoopOptions, at: string, ownFetch: boolean): BlockingLoopSettings {
  const waitMs = optionNumber(o.waitMs, `${at}.waitMs`, 60_000, 1, ownFetch ? MAX_WAIT_MS : MAX_WAIT_WITH_BUILTIN_FETCH_MS);
  const minIntervalMs = optionNumber(o.minIntervalMs, `${at}.minIntervalMs`, 250, 0, 3_600_000);
  const backoff = o.backoff ?? {};
  if (backoff === null || typeof backoff !== 'object' || Array.isArray(backoff)) throw new TypeError(`${at}.backoff must be an object`);
  const backoffInitialMs = optionNumber(backoff.initialMs, `${at}.backoff.initialMs`, 1_000, 1, 3_600_000);
  const backoffMaxMs = optionNumber(backoff.maxMs, `${at}.backoff.maxMs`, Math.max(30_000, backoffInitialMs), backoffInitialMs, 3_600_000);
  return { waitMs, minIntervalMs, backoffInitialMs, backoffMaxMs };
}

/** A non-empty string without control characters (it goes into a query string or a header). */
export function optionText(v: unknown, at: string): string {
  if (typeof v !== 'string' || v === '' || /[\x00-\x1f\x7f]/.test(v)) {
    throw new TypeError(`${at} must be a non-empty string without control characters`);
  }
  return v;
}

function optionNumber(v: unknown, at: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max)) {
    throw new TypeError(`${at} must be a number from ${min} to ${max}`);
  }
  return v;
}
