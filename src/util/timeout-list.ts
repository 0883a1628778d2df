import type { Clock } from './clock.js';

/** Something that times out: a node of a {@link TimeoutList}. */
export interface Expiring {
  expiresAt: number;
  prev: Expiring | undefined;
  next: Expiring | undefined;
  /** Called once its time is up, after it left the list. */
  expire(): void;
}

/**
 * The key of the list a duration goes in, so that durations that vary per call (a per-call `deadline` leaves a
 * different total each time, so may a per-call `timeout`) share a bounded number of lists instead of making one
 * each: 32 ms and under stay exact, above that 16 keys per doubling (the duration rounded up to the next of
 * them), so a list holds durations within 1/16 of each other and there are at most 450 lists up to
 * setTimeout's 2^31 − 1 ms. An entry keeps its own `expiresAt`: the key only groups, it never moves an expiry;
 * an entry that expires before the ones added just before it walks back past them (the spread within a key
 * bounds that walk). A fixed duration keeps one key, so a policy's calls still append in order. Integer
 * arithmetic only: it runs on every call.
 */
export function durationKey(ms: number): number {
  const n = Math.ceil(ms);
  if (!(n > 32)) return n; // NaN and <= 0 too: such calls never reach a list
  if (n > 0x7fffffff) return n; // past setTimeout's limit (validated away): its own key
  const shift = 27 - Math.clz32(n); // n in [2^k, 2^(k+1)) → k − 4: 16 steps of 2^shift per doubling
  return (((n - 1) >> shift) + 1) * (1 << shift);
}

/**
 * Timeouts of one fixed duration, driven by one timer. Entries added with the same duration mostly expire in
 * the order they were added, so a doubly linked list kept in expiry order is sorted by appending: adding is an
 * O(1) append (it walks back from the tail only past entries that expire later, which a fixed duration makes
 * rare), removing is an O(1) unlink, and one `setTimeout` armed for the head serves them all. A `setTimeout` +
 * `clearTimeout` per attempt was about a sixth of a call's cost.
 *
 * The timer is unref'd: like `AbortSignal.timeout`, a timeout alone does not keep the process alive
 * (the work it bounds does, if it holds a socket).
 */
export class TimeoutList {
  private head: Expiring | undefined;
  private tail: Expiring | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires (it may fire early for an entry that left: it then re-arms for the head). */
  private armedAt = Infinity;

  constructor(private readonly clock: Clock) {}

  add(item: Expiring): void {
    let after = this.tail;
    while (after !== undefined && after.expiresAt > item.expiresAt) after = after.prev;
    item.prev = after;
    if (after === undefined) {
      item.next = this.head;
      this.head = item;
    } else {
      item.next = after.next;
      after.next = item;
    }
    if (item.next === undefined) this.tail = item;
    else item.next.prev = item;
    if (this.timer === undefined) this.arm(item.expiresAt);
    else if (item.expiresAt < this.armedAt) this.rearm(item.expiresAt);
  }

  remove(item: Expiring): void {
    const { prev, next } = item;
    if (prev === undefined) {
      if (this.head !== item) return; // not in the list
      this.head = next;
    } else {
      prev.next = next;
    }
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    item.prev = item.next = undefined;
  }

  /** The entries now in the list, oldest first. */
  entries(): Expiring[] {
    const out: Expiring[] = [];
    for (let item = this.head; item !== undefined; item = item.next) out.push(item);
    return out;
  }

  /** Stops the timer; entries left in the list never expire (the mesh is closing). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.head = this.tail = undefined;
  }

  /** A new head expires before the armed time. */
  private rearm(at: number): void {
    clearTimeout(this.timer);
    this.arm(at);
  }

  private arm(at: number): void {
    this.armedAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(0, at - this.clock.now()));
    this.timer.unref?.();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = this.clock.now();
    let item = this.head;
    while (item !== undefined && item.expiresAt <= now) {
      this.remove(item);
      item.expire();
      item = this.head;
    }
    if (item !== undefined) this.arm(item.expiresAt);
  };
}
