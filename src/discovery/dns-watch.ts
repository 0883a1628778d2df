import type { Endpoint } from '../endpoint/endpoint.js';
import type { DnsAnswer } from './dns-lookup.js';

/** setTimeout's limit; a longer delay would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

export interface RefreshLoopOptions {
  /** One lookup of the watched service; rejects on failure, or with the signal's reason once stopped. */
  lookup(signal: AbortSignal): Promise<DnsAnswer>;
  onUpdate(endpoints: readonly Endpoint[]): void;
  onError(error: Error): void;
  /** What the watcher already has (the last answer of `resolve()`), and when it expires: the first look waits for it. */
  readonly baseline: { readonly key: string; readonly expiresAt: number } | undefined;
  /** How long to wait after the n-th failure in a row (n >= 1). */
  errorDelayMs(failures: number): number;
  now(): number;
}

type LoopState =
  | { readonly kind: 'waiting'; readonly timer: NodeJS.Timeout }
  | { readonly kind: 'looking'; readonly controller: AbortController }
  | { readonly kind: 'stopped' };

/**
 * The DNS registry's watch: looks the service up again when the answer's TTL runs out, pushes the list only
 * when it changed (by key: the order of an SRV answer is random, the set is not), and reports failures while
 * the watcher keeps its last list. Its timer is unref'd: a watch alone does not keep a process alive.
 */
export class RefreshLoop {
  private state: LoopState;
  private key: string | undefined;
  private failures = 0;

  constructor(private readonly options: RefreshLoopOptions) {
    const { baseline } = options;
    this.key = baseline?.key;
    this.state = this.wait(baseline ? baseline.expiresAt - options.now() : 0);
  }

  stop(): void {
    const state = this.state;
    this.state = { kind: 'stopped' };
    if (state.kind === 'waiting') clearTimeout(state.timer);
    else if (state.kind === 'looking') state.controller.abort(new Error('the DNS watch was stopped'));
  }

  /** A method, not a property read, so that TypeScript does not keep a narrowing of `state` across awaits. */
  private isStopped(): boolean {
    return this.state.kind === 'stopped';
  }

  private wait(ms: number): LoopState {
    const timer = setTimeout(() => void this.look(), Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    timer.unref();
    return { kind: 'waiting', timer };
  }

  private async look(): Promise<void> {
    if (this.state.kind !== 'waiting') return;
    const controller = new AbortController();
    this.state = { kind: 'looking', controller };
    let nextMs: number;
    try {
      const answer = await this.options.lookup(controller.signal);
      if (this.isStopped()) return;
      this.failures = 0;
      nextMs = answer.ttlMs;
      if (answer.key !== this.key) {
        this.key = answer.key;
        this.deliver(() => this.options.onUpdate(answer.endpoints));
      }
    } catch (error) {
      if (this.isStopped()) return;
      this.failures++;
      nextMs = this.options.errorDelayMs(this.failures);
      this.deliver(() => this.options.onError(error instanceof Error ? error : new Error(String(error))));
    }
    if (this.isStopped()) return; // a callback unsubscribed
    this.state = this.wait(nextMs);
  }

  /** Calls back; a callback that throws must not end the loop: its error goes to `onError` (and no further). */
  private deliver(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      if (this.isStopped()) return;
      try {
        this.options.onError(error instanceof Error ? error : new Error(String(error)));
      } catch {
        // nowhere left to report it
      }
    }
  }
}
