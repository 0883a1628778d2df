/** The checks every option validator shares; each throws a `TypeError` naming the option path `at`. */

/** The header-name token of RFC 9110 §5.6.2. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function plainObject(v: unknown, at: string): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${at} must be an object`);
}

export function unknownKeys(o: object, known: ReadonlySet<string>, at: string): void {
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new TypeError(`${at}.${k} is not a known option (known: ${[...known].join(', ')})`);
  }
}

export function integer(v: unknown, at: string, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && (v as number) >= min)) {
    throw new TypeError(`${at} must be an integer >= ${min}`);
  }
}

export function positive(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
    throw new TypeError(`${at} must be a finite number > 0`);
  }
}

/**
 * The longest delay Node's timers hold (a signed 32-bit count of ms). A longer one overflows and fires after
 * 1 ms, so `totalMs: 2 ** 31` would time every call out at once. Every duration option is refused past it:
 * a clear error beats silently clamping a value that cannot mean what it says.
 */
export const MAX_TIMER_MS = 2_147_483_647;

export function positiveMs(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'number' && v > 0 && v <= MAX_TIMER_MS)) {
    throw new TypeError(`${at} must be a finite number > 0 and at most ${MAX_TIMER_MS} ms (setTimeout's limit)`);
  }
}

export function nonNegativeMs(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= MAX_TIMER_MS)) {
    throw new TypeError(`${at} must be a finite number >= 0 and at most ${MAX_TIMER_MS} ms (setTimeout's limit)`);
  }
}

export function nonNegative(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    throw new TypeError(`${at} must be a finite number >= 0`);
  }
}

export function percent(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 100)) {
    throw new TypeError(`${at} must be a number from 0 to 100`);
  }
}

export function boolean(v: unknown, at: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`${at} must be a boolean`);
}
