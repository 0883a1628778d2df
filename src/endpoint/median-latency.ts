import type { EndpointState } from './endpoint-state.js';

/**
 * The median latency of the healthy endpoints of `states` that `skip` leaves in, or `fallback` when there is none:
 * the neutral cost an endpoint starts from when it joins a running service or comes back (service-health.ts). An
 * even count takes the mean of the middle two: with two peers, the newcomer sits between them, neither the dearest
 * (it would lose every P2C comparison) nor the cheapest.
 */
export function medianLatency(
  states: readonly EndpointState[],
  now: number,
  skip: (s: EndpointState) => boolean,
  fallback: number,
): number {
  const peers: number[] = [];
  for (const s of states) if (!skip(s) && s.healthy) peers.push(s.latency.get(now));
  if (peers.length === 0) return fallback;
  peers.sort((a, b) => a - b);
  const mid = peers.length >> 1;
  return peers.length % 2 === 1 ? peers[mid]! : (peers[mid - 1]! + peers[mid]!) / 2;
}
