import type { EndpointState } from '../endpoint/endpoint-state.js';
import { murmur3 } from '../util/hash.js';
import type { Rng } from '../util/random.js';
import type { Balancer, PickRequest } from './balancer.js';

/** Envoy's default overprovisioning factor (140 %). */
export const DEFAULT_OVERPROVISIONING_FACTOR = 1.4;

/** How often, at most, the zone's health is re-read on the call path (and at every update). */
export const LOCALITY_RECHECK_MS = 100;

/** What {@link LocalityBalancer} reports when the share of traffic leaving the zone changes. */
export interface ZoneSpill {
  /** This process's zone. */
  readonly from: string;
  /** The other zones that receive the spilled traffic (an endpoint without a zone is listed as `''`). */
  readonly to: readonly string[];
  /** Healthy endpoints of the local zone, in percent of its endpoints (0 when it has none). */
  readonly localHealthyPercent: number;
  /** Percent of first attempts now sent out of the zone; 0 when all traffic is local again. */
  readonly spillPercent: number;
}

/** What {@link LocalityBalancer} is made with. */
export interface LocalityOptions {
  /** This process's zone (the mesh's `zone`). */
  readonly zone: string;
  /** A zone counts as fully healthy while healthy share × factor ≥ 1. Default 1.4. */
  readonly overprovisioningFactor: number;
  /** Draws the local-or-not choice of keyless picks while traffic spills. */
  readonly rng: Rng;
  /** Called on every change of the spilled share (health or membership changes), never per pick. */
  readonly onSpill?: (spill: ZoneSpill) => void;
}

/**
 * Zone-aware balancing around a built-in balancer: endpoints in this process's zone are preferred, and traffic
 * spills to the other zones only as the local zone loses healthy endpoints.
 *
 * The split follows Envoy's priority levels with the overprovisioning factor (docs "Priority levels" and
 * "Overprovisioning factor"), with the local zone as priority 0 and every other zone as priority 1:
 * - a zone's health score is `min(100 %, healthy share × factor)`, in whole percent: with the default 1.4 the local
 *   zone keeps all the traffic until fewer than 72 % (≈ 1 ÷ 1.4) of its endpoints are healthy;
 * - below that the local zone gets its score in percent of the traffic and the other zones the rest;
 * - when the two scores add up to less than 100 %, both are scaled up to sum to 100 % (Envoy's normalisation);
 * - in panic (the service's panic threshold) zones are ignored and traffic follows the weights, as Envoy skips
 *   zone-aware routing in panic mode.
 * Envoy's own zone-aware routing also weighs how the *callers* are spread over zones (it knows the local cluster);
 * a library does not, so this takes the priority-level rule, which needs only the upstream's health.
 *
 * Endpoints without a zone count as non-local. Each side has its own instance of the inner balancer, built and
 * updated with that side's endpoints only, so a hash balancer keeps one table per side (keys stay consistent within
 * the zone), and a retry whose local candidates are all tried goes to the other side. Which side a first attempt
 * goes to while spilling is drawn from the rng, or from the key's hash when the call has a `hashKey` (the same key
 * stays on the same side). Health is re-read at most every 100 ms of clock time, on the call path, and at every
 * update: one comparison per pick otherwise.
 *
 * @example
 * createMesh({ registry, zone: 'eu-west-1a', defaults: { locality: { overprovisioningFactor: 1.4 } } });
 */
export class LocalityBalancer implements Balancer {
  readonly name: string;
  private readonly local: Balancer;
  private readonly remote: Balancer;
  private readonly factorPercent: number;
  private source: readonly EndpointState[] = [];
  private localStates: EndpointState[] = [];
  private remoteStates: EndpointState[] = [];
  private remoteZones: string[] = [];
  /** Share of first attempts kept local, from 0 to 1. */
  private localShare = 1;
  /** The share by weight alone (used in panic). */
  private neutralShare = 1;
  private checkAt = -Infinity;
  private spillPercent = 0;

  constructor(
    make: () => Balancer,
    private readonly options: LocalityOptions,
  ) {
    this.local = make();
    this.remote = make();
    this.name = this.local.name;
    this.factorPercent = Math.round(options.overprovisioningFactor * 100);
  }

  update(endpoints: readonly EndpointState[]): void {
    this.source = endpoints;
    const local: EndpointState[] = [];
    const remote: EndpointState[] = [];
    const zones = new Set<string>();
    let localWeight = 0;
    let remoteWeight = 0;
    for (const s of endpoints) {
      if (s.endpoint.zone === this.options.zone) {
        local.push(s);
        localWeight += s.endpoint.weight;
      } else {
        remote.push(s);
        remoteWeight += s.endpoint.weight;
        zones.add(s.endpoint.zone ?? '');
      }
    }
    this.localStates = local;
    this.remoteStates = remote;
    this.remoteZones = [...zones].sort();
    this.neutralShare = localWeight + remoteWeight > 0 ? localWeight / (localWeight + remoteWeight) : 1;
    this.local.update?.(local);
    this.remote.update?.(remote);
    this.checkAt = -Infinity;
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    if (endpoints !== this.source) this.update(endpoints);
    if (request.now >= this.checkAt) this.evaluate(request.now);
    const share = request.panic ? this.neutralShare : this.localShare;
    let localFirst = true;
    if (share < 1) {
      const u = share <= 0 ? 1 : request.hashKey === undefined ? this.options.rng() : murmur3(request.hashKey, 0x6c6f63) / 4_294_967_296;
      localFirst = u < share;
    }
    if (localFirst) return this.local.pick(this.localStates, request) ?? this.remote.pick(this.remoteStates, request);
    return this.remote.pick(this.remoteStates, request) ?? this.local.pick(this.localStates, request);
  }

  /** Re-reads the zones' health and sets the local share; reports a changed spill. */
  private evaluate(now: number): void {
    this.checkAt = now + LOCALITY_RECHECK_MS;
    const local = this.localStates;
    const remote = this.remoteStates;
    const localHealthy = countHealthy(local);
    const localScore = this.score(localHealthy, local.length);
    const remoteScore = this.score(countHealthy(remote), remote.length);
    let percent: number;
    if (remote.length === 0) percent = 100;
    else if (local.length === 0) percent = 0;
    else if (localScore + remoteScore === 0) percent = Math.round(this.neutralShare * 100);
    else if (localScore + remoteScore < 100) percent = (localScore * 100) / (localScore + remoteScore);
    else percent = localScore;
    this.localShare = percent / 100;
    const spill = Math.round(100 - percent);
    if (spill !== this.spillPercent) {
      this.spillPercent = spill;
      this.options.onSpill?.({
        from: this.options.zone,
        to: spill > 0 ? this.remoteZones : [],
        localHealthyPercent: local.length === 0 ? 0 : Math.floor((localHealthy * 100) / local.length),
        spillPercent: spill,
      });
    }
  }

  /** Envoy's health score in whole percent: min(100, healthy% × factor). */
  private score(healthy: number, total: number): number {
    if (total === 0) return 0;
    return Math.min(100, Math.floor((healthy * this.factorPercent) / total));
  }
}

function countHealthy(states: readonly EndpointState[]): number {
  let n = 0;
  for (const s of states) if (s.healthy) n++;
  return n;
}
