import type { Rng } from '../util/random.js';
import type { Balancer } from './balancer.js';
import { LeastRequestBalancer } from './least-request.js';
import { MaglevBalancer, type MaglevOptions } from './maglev.js';
import { PeakEwmaBalancer } from './peak-ewma.js';
import { RandomBalancer } from './random.js';
import { RingHashBalancer, type RingHashOptions } from './ring-hash.js';
import { RoundRobinBalancer } from './round-robin.js';

/** The built-in balancers, by the name a policy's `balancer` option takes. */
export type BalancerName = 'round-robin' | 'random' | 'least-request' | 'peak-ewma' | 'ring-hash' | 'maglev';

/** What a built-in balancer is made with. */
export interface BalancerDeps {
  /** Source of randomness: offsets, draws and tie-breaks (seeded in tests and simulations). */
  readonly rng: Rng;
  /** `ring-hash` tuning; Envoy's defaults when left out. */
  readonly ringHash?: Partial<RingHashOptions>;
  /** `maglev` tuning; Envoy's defaults when left out. */
  readonly maglev?: Partial<MaglevOptions>;
}

const factories: { readonly [K in BalancerName]: (deps: BalancerDeps) => Balancer } = {
  'round-robin': (deps) => new RoundRobinBalancer(deps.rng),
  random: (deps) => new RandomBalancer(deps.rng),
  'least-request': (deps) => new LeastRequestBalancer(deps.rng),
  'peak-ewma': (deps) => new PeakEwmaBalancer(deps.rng),
  'ring-hash': (deps) => new RingHashBalancer(deps.rng, deps.ringHash),
  maglev: (deps) => new MaglevBalancer(deps.rng, deps.maglev),
};

/** The names {@link createBalancer} accepts, in the order error messages list them. */
export const balancerNames: readonly BalancerName[] = Object.freeze(Object.keys(factories) as BalancerName[]);

/** Whether `value` names a built-in balancer. */
export function isBalancerName(value: unknown): value is BalancerName {
  return typeof value === 'string' && Object.hasOwn(factories, value);
}

/**
 * A fresh balancer for one service (balancers keep per-service state, so never share one between services).
 * A {@link Balancer} object is returned as it is. Anything else throws a `TypeError` naming `where`.
 *
 * @param where the option path for error messages, e.g. `services.users.balancer`
 * @example
 * createBalancer('peak-ewma', { rng: Math.random });
 * createBalancer('maglev', { rng: Math.random, maglev: { tableSize: 65_537 } });
 * createBalancer({ name: 'first', pick: (endpoints) => endpoints[0] }, { rng: Math.random });
 */
export function createBalancer(
  spec: BalancerName | Balancer,
  deps: BalancerDeps,
  where = 'balancer',
): Balancer {
  checkBalancer(spec, where);
  return isBalancerName(spec) ? factories[spec](deps) : spec;
}

/** Throws a `TypeError` naming `where` unless `spec` is a built-in name or an object with `pick()`. */
export function checkBalancer(spec: unknown, where = 'balancer'): asserts spec is BalancerName | Balancer {
  if (isBalancerName(spec)) return;
  if (typeof spec === 'object' && spec !== null && typeof (spec as Partial<Balancer>).pick === 'function') return;
  const got = typeof spec === 'string' ? JSON.stringify(spec) : typeof spec;
  throw new TypeError(
    `${where} must be one of ${balancerNames.map((n) => `'${n}'`).join(', ')} or an object with a pick() method, got ${got}`,
  );
}
