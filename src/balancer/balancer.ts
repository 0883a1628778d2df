import type { EndpointState } from '../endpoint/endpoint-state.js';

/** What a pick needs to know about the call. */
export interface PickRequest {
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /** Endpoints already tried in this call; a pick avoids them while another endpoint exists. */
  readonly tried: readonly EndpointState[];
  /** Affinity key, for hash-based balancers. */
  readonly hashKey?: string | undefined;
  /** Clock reading for this pick (balancers that read latency need it). */
  readonly now: number;
}

/**
 * Chooses an endpoint, synchronously. It never awaits, allocates little and sets no timer.
 * `undefined` means "nothing available", which the call step turns into an error.
 *
 * Candidates passed to `pick` are the endpoints that are currently eligible (not ejected, breaker not
 * open, or all of them in panic mode). The balancer itself must skip `request.tried`; when every candidate
 * was tried already it must return `undefined`, and the caller then decides whether to reuse one.
 */
export interface Balancer {
  readonly name: string;
  /** Called whenever the endpoint set changes, before the next `pick`. Rebuild tables here, not in `pick`. */
  update?(endpoints: readonly EndpointState[]): void;
  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined;
}

/** Whether `state` was already tried in this call (the list is a handful of entries at most). */
export function wasTried(state: EndpointState, request: PickRequest): boolean {
  const tried = request.tried;
  for (let i = 0; i < tried.length; i++) if (tried[i] === state) return true;
  return false;
}
