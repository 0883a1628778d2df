import type { PickRequest } from '../balancer/balancer.js';
import type { CallEnv } from '../call/env.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import { TimeoutError } from '../errors.js';
import type { RouteStats } from '../observe/route-stats.js';
import type { AttemptContext, AttemptFn } from '../transport/attempt-context.js';
import type { Transport } from '../transport/transport.js';
import type { Backend } from './backend.js';

const NONE: readonly EndpointState[] = Object.freeze([]);

/**
 * Request mirroring (Envoy's `request_mirror_policies`): a copy of the request goes to the mirror backend, fire
 * and forget. It is never awaited and never retried; it takes no bulkhead slot, no retry budget and no
 * in-flight count, and records nothing on any endpoint (latency, breaker, ejection), so its outcome can reach
 * neither the caller nor anyone's health. It is bounded by its backend's `attemptMs`, its response body is read
 * and dropped within the transport's drain bounds (the connection is reused), and `close()` aborts those in flight.
 * Counted apart, per route.
 */
export class Mirrors {
  /** Mirrors in flight, with their timers: close() aborts them and clears the timers. */
  private readonly live = new Map<AbortController, ReturnType<typeof setTimeout>>();

  constructor(private readonly env: CallEnv) {}

  /** A mirror to fire later (the route step fires it once the call is admitted and no fault aborted it). */
  prepare(backend: Backend, send: AttemptFn<unknown>, transport: Transport, stats: RouteStats): { fire(): void } {
    return { fire: () => this.fire(backend, send, transport, stats) };
  }

  fire(backend: Backend, send: AttemptFn<unknown>, transport: Transport, stats: RouteStats): void {
    if (this.env.isClosed()) return;
    // A mirror's service (or this one, on its first call) may not be resolved yet: its list is loaded first.
    const loading = backend.shared.prepare(this.env.clock.now());
    if (loading === undefined) this.send(backend, send, transport, stats);
    else {
      const go = (): void => {
        if (!this.env.isClosed()) this.send(backend, send, transport, stats);
      };
      loading.then(go, go);
    }
  }

  private send(backend: Backend, send: AttemptFn<unknown>, transport: Transport, stats: RouteStats): void {
    const now = this.env.clock.now();
    const request: PickRequest = { attempt: 1, tried: NONE, hashKey: undefined, now, panic: backend.health.panic };
    let state: EndpointState | undefined;
    try {
      state = backend.choose(request);
    } catch {
      state = undefined; // a custom balancer that throws: no mirror (its own calls report the throw)
    }
    stats.mirrored++;
    if (state === undefined) {
      stats.mirrorFailed++;
      return;
    }
    const endpoint = state.endpoint;
    const ms = backend.policy.timeout.attemptMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new TimeoutError(backend.name, 'attempt', ms)), ms);
    timer.unref?.();
    this.live.set(controller, timer);
    const ctx: AttemptContext = {
      signal: controller.signal,
      attempt: 1,
      service: backend.name,
      deadline: Date.now() + ms,
      endpoint,
      route: backend.route,
      backend: backend.backend,
      mirror: true,
    };
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      this.live.delete(controller);
      if (ok) stats.mirrorSucceeded++;
      else stats.mirrorFailed++;
    };
    new Promise<unknown>((resolve) => resolve(send(endpoint, ctx)))
      .then((value) => {
        const status = transport.statusOf(value);
        // Drained in the background within the transport's bounds (8 MiB, 5 s), so the connection is reused.
        transport.discard(value);
        return status === undefined || status < 500;
      })
      .then(done, () => done(false));
  }

  /** Aborts every mirror in flight (the mesh is closing). */
  close(): void {
    for (const [controller, timer] of this.live) {
      clearTimeout(timer);
      controller.abort();
    }
    this.live.clear();
  }
}
