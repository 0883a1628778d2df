import type { EndpointState } from '../endpoint/endpoint-state.js';
import { hashOut, murmur3x2 } from '../util/hash.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';
import { TableSource } from './table-source.js';
import { boundedLoadPick } from './bounded-load.js';
import { scanByHash } from './ring-hash.js';

/** Maglev tuning (see `MaglevPolicy` in options.ts). */
export interface MaglevOptions {
  /** Lookup table size M, a prime. Default 65537 (Envoy's default). Grown, with a warning, below the endpoint count. */
  readonly tableSize: number;
  /** Bounded load, percent >= 100 (Envoy's `hash_balance_factor`); 0 turns it off. Default 0. */
  readonly hashBalanceFactor: number;
}

export const DEFAULT_MAGLEV: MaglevOptions = { tableSize: 65_537, hashBalanceFactor: 0 };

/** Largest table size accepted (Envoy's limit for `table_size`). */
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

/** Table probes (attempt-salted rehashes) before the O(n) fallback scan (see `pick`). */
const MAX_PROBES = 16;
const TWO_32 = 4_294_967_296;

/** Whether `n` is prime (trial division: table sizes are at most a few million). */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016, §3.4),
 * with Envoy's weighted fill (`MaglevTable::constructImplementationInternals`).
 *
 * **Table.** Endpoints are sorted by id (so every client with the same list builds the same table, as Envoy sorts by
 * host key). Each gets `offset = h1 mod M` and `skip = h2 mod (M − 1) + 1` from the two 32-bit MurmurHash3 halves of
 * its id, and so a permutation `offset + j × skip (mod M)` of the table's slots. Round after round, each endpoint
 * takes its next free preferred slot, but an endpoint of weight w only every `max weight ÷ w` rounds (Envoy's
 * weighted fill), until all M slots are taken. Built in `update()`, off the hot path: O(M log M) work, an
 * Int32Array of M entries. It is rebuilt only when the set of endpoints or a configured weight changes.
 *
 * **Pick.** O(1): the key's 64-bit hash (two MurmurHash3 halves) modulo M indexes the table. A call without a key
 * gets a random one (as Envoy). On a retry (`request.attempt` > 1) the hash is salted with the attempt number the
 * way Envoy's `MaglevTable::chooseHost` does (`hash ^= ~0 − attempt + 1`, attempt counted from 0), so retries of
 * one key spread instead of all following the first pick. When the slot's endpoint is unavailable (tried, breaker
 * open, ejected: see isExcluded) the next salts are tried, up to 16 probes; past that an O(n) scan picks an
 * available endpoint by the key's hash. Keys whose endpoint is available never move. With `hashBalanceFactor`, an
 * overloaded endpoint passes the key on (bounded-load.ts).
 *
 * Consistency: removing one of n endpoints moves its own keys plus a small extra share (the paper's "disruption":
 * 0.2 % of keys measured with M = 65537 and 10 endpoints), and adding it back restores the mapping exactly. Each
 * endpoint's share of the table is within a few slots of M × its weight share (max/mean 1.007 with 1,000
 * endpoints, where a 1,024-point ring hash has 5.3).
 *
 * Weights are the configured ones: slow start does not apply (see ring-hash.ts).
 *
 * @example
 * createMesh({ registry, services: { cache: { balancer: 'maglev', maglev: { tableSize: 65_537 } } } });
 * await mesh.call('cache', fn, { hashKey: 'user-42' });
 */
export class MaglevBalancer implements Balancer {
  readonly name = 'maglev';
  private readonly options: MaglevOptions;
  /** The table's size: `tableSize`, or larger while there are more endpoints than that (see tableSizeFor). */
  private m: number;
  /** (2^32 mod M): reduces a 64-bit hash held as two 32-bit halves modulo M without BigInt. */
  private highFactor: number;
  private warned = false;
  private readonly source = new TableSource();
  /** Endpoints in id order; the table holds indices into it. */
  private hosts: EndpointState[] = [];
  private table = new Int32Array(0);
  private lastKey: string | undefined;
  private lastHi = 0;
  private lastLo = 0;

  constructor(
    private readonly rng: Rng,
    options: Partial<MaglevOptions> = {},
  ) {
    this.options = { ...DEFAULT_MAGLEV, ...options };
    this.m = this.options.tableSize;
    if (!isPrime(this.m) || this.m > MAX_MAGLEV_TABLE_SIZE) {
      throw new RangeError(`maglev.tableSize must be a prime <= ${MAX_MAGLEV_TABLE_SIZE}, got ${this.m}`);
    }
    this.highFactor = TWO_32 % this.m;
  }

  update(endpoints: readonly EndpointState[]): void {
    if (this.source.changed(endpoints)) this.build(endpoints);
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    if (this.source.changed(endpoints)) this.build(endpoints);
    if (this.hosts.length === 0) return undefined;
    let hi: number;
    let lo: number;
    const key = request.hashKey;
    if (key === undefined) {
      hi = (this.rng() * TWO_32) >>> 0;
      lo = (this.rng() * TWO_32) >>> 0;
    } else {
      if (key !== this.lastKey) {
        murmur3x2(key);
        this.lastKey = key;
        this.lastHi = hashOut[0] as number;
        this.lastLo = hashOut[1] as number;
      }
      hi = this.lastHi;
      lo = this.lastLo;
    }
    const m = this.m;
    const table = this.table;
    const hosts = this.hosts;
    const first = request.attempt > 1 ? request.attempt - 1 : 0;
    let chosen: EndpointState | undefined;
    for (let salt = first; salt < first + MAX_PROBES; salt++) {
      // Envoy: hash ^= ~0ULL - attempt + 1, i.e. 2^64 − attempt: the high half all ones, the low half 2^32 − attempt.
      const h = salt === 0 ? hi : ~hi >>> 0;
      const l = salt === 0 ? lo : (lo ^ -salt) >>> 0;
      const index = ((h % m) * this.highFactor + (l % m)) % m;
      const s = hosts[table[index] as number] as EndpointState;
      if (!isExcluded(s, request)) {
        chosen = s;
        break;
      }
    }
    if (chosen === undefined) {
      chosen = scanByHash(this.source.endpoints, request, hi);
      if (chosen === undefined) return undefined;
    }
    const factor = this.options.hashBalanceFactor;
    return factor > 0 ? boundedLoadPick(chosen, this.source.endpoints, request, factor, hi) : chosen;
  }

  /** How many table slots each endpoint owns (for tests and the consistency figures). */
  slots(): Map<EndpointState, number> {
    const out = new Map<EndpointState, number>();
    for (const i of this.table) {
      const s = this.hosts[i] as EndpointState;
      out.set(s, (out.get(s) ?? 0) + 1);
    }
    return out;
  }

  private build(endpoints: readonly EndpointState[]): void {
    this.source.set(endpoints);
    const hosts = [...endpoints].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.hosts = hosts;
    const n = hosts.length;
    if (n === 0) {
      this.table = new Int32Array(0);
      return;
    }
    const m = this.tableSizeFor(n);
    this.m = m;
    this.highFactor = TWO_32 % m;
    const skip = new Float64Array(n);
    const cursor = new Float64Array(n); // offset + next × skip (mod M), advanced by addition
    const weight = new Float64Array(n);
    const target = new Float64Array(n);
    let total = 0;
    for (const s of hosts) total += s.endpoint.weight;
    let maxWeight = 0;
    for (let i = 0; i < n; i++) {
      const s = hosts[i] as EndpointState;
      murmur3x2(s.id);
      cursor[i] = (hashOut[0] as number) % m;
      skip[i] = ((hashOut[1] as number) % (m - 1)) + 1;
      weight[i] = s.endpoint.weight / total;
      if ((weight[i] as number) > maxWeight) maxWeight = weight[i] as number;
    }
    const table = new Int32Array(m).fill(-1);
    let filled = 0;
    for (let round = 1; filled < m; round++) {
      for (let i = 0; i < n && filled < m; i++) {
        // An endpoint of the largest weight takes a slot every round; one of a third of it, every third round.
        if (round * (weight[i] as number) < (target[i] as number)) continue;
        target[i] = (target[i] as number) + maxWeight;
        let c = cursor[i] as number;
        const step = skip[i] as number;
        while (table[c] !== -1) {
          c += step;
          if (c >= m) c -= m;
        }
        table[c] = i;
        c += step;
        cursor[i] = c >= m ? c - m : c;
        filled++;
      }
    }
    this.table = table;
  }

  /**
   * A table smaller than the endpoint count leaves endpoints with no slot, and so with no traffic at all.
   * Then the table grows to the smallest prime >= the count (each endpoint takes a slot in the fill's first
   * round), and a warning says so once per balancer; the spread stays coarse until `tableSize` is raised.
   */
  private tableSizeFor(n: number): number {
    const configured = this.options.tableSize;
    if (n <= configured) return configured;
    let m = Math.min(n, MAX_MAGLEV_TABLE_SIZE);
    while (!isPrime(m)) m++; // MAX_MAGLEV_TABLE_SIZE is prime: this stops there at the latest
    if (!this.warned) {
      this.warned = true;
      process.emitWarning(
        `maglev.tableSize ${configured} is smaller than the ${n} endpoints: using a table of ${m} so that every endpoint ` +
          `gets traffic, but unevenly. For an even spread, set maglev.tableSize to a prime much larger than the endpoint count.`,
        { code: 'PROXYLESS_MAGLEV_TABLE_SIZE' },
      );
    }
    return m;
  }
}
