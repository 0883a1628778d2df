import type { EndpointState } from '../endpoint/endpoint-state.js';
import { hashOut, murmur3x2 } from '../util/hash.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';
import { TableSource } from './table-source.js';
import { boundedLoadPick } from './bounded-load.js';

/** Ring hash tuning (see `RingHashPolicy` in options.ts). */
export interface RingHashOptions {
  /** Fewest entries on the ring. Default 1024 (Envoy's `minimum_ring_size`). */
  readonly minRingSize: number;
  /** Most entries on the ring. Default 8,388,608 (Envoy's `maximum_ring_size`). */
  readonly maxRingSize: number;
  /** Bounded load, percent >= 100 (Envoy's `hash_balance_factor`); 0 turns it off. Default 0. */
  readonly hashBalanceFactor: number;
}

export const DEFAULT_RING_HASH: RingHashOptions = { minRingSize: 1024, maxRingSize: 8_388_608, hashBalanceFactor: 0 };

/** Ring steps walked past unavailable endpoints before the O(n) fallback scan (see `pick`). */
const MAX_WALK = 4096;
/** An owner's rank is packed below the 32-bit position in one double, for a native numeric sort. */
const RANK_SPACE = 2 ** 21;
const TWO_32 = 4_294_967_296;

/**
 * Consistent hashing on a ring of virtual nodes (Karger et al. 1997; ketama; Envoy `RING_HASH`).
 *
 * **Ring.** Each endpoint puts `max(1, round(weight × k))` points on a 32-bit ring, at MurmurHash3 of
 * `"<id>_<i>"` (see util/hash.ts). `k`, the points per unit of weight, is the smallest power of two that gives the
 * ring at least `minRingSize` points and the lightest endpoint at least one; it is capped so the ring stays within
 * `maxRingSize`. Envoy instead scales by the normalised weights, so the point count of every host changes whenever
 * one joins or leaves, and keys move between hosts that stayed; with a per-endpoint count that depends only on the
 * endpoint's own weight and on `k`, which moves in powers of two, removing an endpoint moves only the keys it held
 * (unless `k` steps), and adding it back restores the mapping. Points are ordered by position, ties by endpoint id,
 * so every client with the same list builds the same ring whatever the list's order.
 *
 * **Pick.** The key is `request.hashKey` (from the call's `hashKey`, or for fetch the policy's `hashHeader`); a call
 * without a key gets a random one, as Envoy does, so keyless traffic spreads by weight. The first point at or after
 * the key's hash owns it (binary search, O(log ring)). When that endpoint is unavailable (tried in this call, breaker
 * open, ejected: see isExcluded), the walk goes on clockwise to the next available one: exactly where the key would
 * land if the unavailable endpoints were not on the ring, which is what Envoy's retry offset aims at ("behave as if
 * this host was not in the ring"). The walk is bounded (4096 steps); past that an O(n) scan picks an available
 * endpoint by the key's hash. With `hashBalanceFactor`, an overloaded endpoint passes the key on (bounded-load.ts).
 *
 * Weights are the configured ones: slow start does not apply (tables are rebuilt only when the set or a configured
 * weight changes, as in Envoy, whose slow start covers round robin and least request only).
 *
 * @example
 * createMesh({ registry, services: { cache: { balancer: 'ring-hash', ringHash: { minRingSize: 4096 } } } });
 * await mesh.call('cache', fn, { hashKey: 'user-42' });
 */
export class RingHashBalancer implements Balancer {
  readonly name = 'ring-hash';
  private readonly options: RingHashOptions;
  /** The list the ring was built for, and the configured weights it was built with. */
  private readonly source = new TableSource();
  /** Sorted point positions, and the endpoint owning each. */
  private points = new Uint32Array(0);
  private owners: EndpointState[] = [];
  private lastKey: string | undefined;
  private lastHash = 0;

  constructor(
    private readonly rng: Rng,
    options: Partial<RingHashOptions> = {},
  ) {
    this.options = { ...DEFAULT_RING_HASH, ...options };
  }

  update(endpoints: readonly EndpointState[]): void {
    if (this.source.changed(endpoints)) this.build(endpoints);
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    if (this.source.changed(endpoints)) this.build(endpoints);
    const points = this.points;
    const size = points.length;
    if (size === 0) return undefined;
    const h = this.keyHash(request.hashKey);
    // The first point at or after h, wrapping to 0 past the end.
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    let i = lo === size ? 0 : lo;
    const owners = this.owners;
    let chosen: EndpointState | undefined;
    let skipped: EndpointState | undefined;
    const steps = Math.min(size, MAX_WALK);
    for (let step = 0; step < steps; step++) {
      const s = owners[i] as EndpointState;
      if (s !== skipped) {
        if (!isExcluded(s, request)) {
          chosen = s;
          break;
        }
        skipped = s;
      }
      i = i + 1 === size ? 0 : i + 1;
    }
    if (chosen === undefined) {
      if (steps === size) return undefined; // the whole ring was walked: nothing is available
      chosen = scanByHash(this.source.endpoints, request, h);
      if (chosen === undefined) return undefined;
    }
    const factor = this.options.hashBalanceFactor;
    return factor > 0 ? boundedLoadPick(chosen, this.source.endpoints, request, factor, h) : chosen;
  }

  /** Share of the hash space each endpoint owns (for tests and the consistency figures). */
  shares(): Map<EndpointState, number> {
    const out = new Map<EndpointState, number>();
    const size = this.points.length;
    for (let i = 0; i < size; i++) {
      const prev = i === 0 ? (this.points[size - 1] as number) - TWO_32 : (this.points[i - 1] as number);
      const owner = this.owners[i] as EndpointState;
      out.set(owner, (out.get(owner) ?? 0) + ((this.points[i] as number) - prev) / TWO_32);
    }
    return out;
  }

  /** Ring entries (for tests and the pick-cost bench). */
  get size(): number {
    return this.points.length;
  }

  private keyHash(key: string | undefined): number {
    if (key === undefined) return (this.rng() * TWO_32) >>> 0;
    if (key !== this.lastKey) {
      murmur3x2(key);
      this.lastKey = key;
      this.lastHash = hashOut[0] as number;
    }
    return this.lastHash;
  }

  private build(endpoints: readonly EndpointState[]): void {
    this.source.set(endpoints);
    const n = endpoints.length;
    if (n === 0) {
      this.points = new Uint32Array(0);
      this.owners = [];
      return;
    }
    // Ranks by id: ties on the ring break the same way in every client.
    const ranked = [...endpoints].sort(byId);
    let total = 0;
    let min = Infinity;
    for (const s of ranked) {
      total += s.endpoint.weight;
      if (s.endpoint.weight < min) min = s.endpoint.weight;
    }
    const { minRingSize, maxRingSize } = this.options;
    let k = 2 ** Math.ceil(Math.log2(Math.max(minRingSize / total, 1 / min)));
    if (k * total > maxRingSize) k = maxRingSize / total;
    const counts = ranked.map((s) => Math.max(1, Math.round(s.endpoint.weight * k)));
    const size = counts.reduce((a, b) => a + b, 0);
    const points = new Uint32Array(size);
    const owners: EndpointState[] = new Array<EndpointState>(size);
    if (n <= RANK_SPACE) {
      const packed = new Float64Array(size);
      let j = 0;
      for (let r = 0; r < n; r++) {
        const id = (ranked[r] as EndpointState).id;
        for (let v = 0, c = counts[r] as number; v < c; v++) {
          murmur3x2(`${id}_${v}`);
          packed[j++] = (hashOut[0] as number) * RANK_SPACE + r;
        }
      }
      packed.sort();
      for (let x = 0; x < size; x++) {
        const v = packed[x] as number;
        const r = v % RANK_SPACE;
        points[x] = (v - r) / RANK_SPACE;
        owners[x] = ranked[r] as EndpointState;
      }
    } else {
      const entries: [number, number][] = [];
      for (let r = 0; r < n; r++) {
        const id = (ranked[r] as EndpointState).id;
        for (let v = 0, c = counts[r] as number; v < c; v++) {
          murmur3x2(`${id}_${v}`);
          entries.push([hashOut[0] as number, r]);
        }
      }
      entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      entries.forEach(([p, r], x) => {
        points[x] = p;
        owners[x] = ranked[r] as EndpointState;
      });
    }
    this.points = points;
    this.owners = owners;
  }
}

function byId(a: EndpointState, b: EndpointState): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * An available endpoint chosen by the key's hash, in proportion to configured weight; the fallback of hash
 * balancers when most candidates are unavailable. O(n), and the same key picks the same one while the
 * availability stays the same.
 */
export function scanByHash(endpoints: readonly EndpointState[], request: PickRequest, hash: number): EndpointState | undefined {
  let total = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const s = endpoints[i] as EndpointState;
    if (!isExcluded(s, request)) total += s.endpoint.weight;
  }
  if (total === 0) return undefined;
  let r = (hash / TWO_32) * total;
  let last: EndpointState | undefined;
  for (let i = 0; i < endpoints.length; i++) {
    const s = endpoints[i] as EndpointState;
    if (isExcluded(s, request)) continue;
    last = s;
    r -= s.endpoint.weight;
    if (r < 0) return s;
  }
  return last;
}
