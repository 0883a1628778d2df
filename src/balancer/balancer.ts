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
  /** Panic mode: too few endpoints are healthy, so ejected ones are candidates again. */
  readonly panic: boolean;
}

/**
 * Chooses an endpoint, synchronously. It never awaits, allocates little and sets no timer.
 * `undefined` means "nothing available", which the call step turns into an error.
 *
 * Candidates passed to `pick` are all the service's endpoints. The balancer must pass over those
 * `isExcluded` names (tried in this call, breaker open, ejected); when none is left it returns
 * `undefined`, and the caller decides what that means (reuse a tried one, or fail fast).
 */
export interface Balancer {
  /** Shown in `mesh.snapshot()`. */
  readonly name: string;
  /** Called whenever the endpoint set changes, before the next `pick`. Rebuild tables here, not in `pick`. */
  update?(endpoints: readonly EndpointState[]): void;
  /** Chooses an endpoint synchronously, or `undefined` when every one is excluded. Never awaits, never throws. */
  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined;
}

/**
 * Whether a pick must pass `state` over: it was already tried in this call (a handful of entries at
 * most), its breaker lets nothing through, or it is ejected and the service is not in panic.
 */
export function isExcluded(state: EndpointState, request: PickRequest): boolean {
  if (!state.usable(request.panic)) return true;
  const tried = request.tried;
  for (let i = 0; i < tried.length; i++) if (tried[i] === state) return true;
  return false;
}
