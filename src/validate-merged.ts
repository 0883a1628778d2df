import { DEFAULT_ADAPTIVE_CONCURRENCY, DEFAULT_TIMEOUT } from './defaults.js';
import type { RouteSpec } from './config/types.js';
import type { AdaptiveConcurrencyPolicy, Policy } from './options.js';

/**
 * The checks that hold between keys only once the layers are merged, as each service (and each route) resolves
 * its policy: the built-in defaults, then `defaults`, then `services[name]`, then a route's overrides. A layer
 * may set one bound and inherit the other (`defaults` sets `adaptiveConcurrency.min`, a service its `max`; a
 * route sets `timeout.totalMs` under a service's `attemptMs`), so no single layer can be checked alone.
 * `createMesh` runs this on its options, and the configuration store on every merged configuration (the API's
 * layer with each config source's). A key present with the value `undefined` counts as not set.
 */
export function validateMergedPolicies(
  defaults: Policy = {},
  services: Readonly<Record<string, Policy>> = {},
  routes: Readonly<Record<string, readonly RouteSpec[]>> = {},
): void {
  validateAdaptiveBounds(defaults, services);
  validateTimeouts(defaults, services, routes);
}

/**
 * min <= initial <= max of `adaptiveConcurrency`: a service's own keys over those of `defaults`, over the
 * built-in 20, 20 and 200. `defaults` is checked alone too: a service it names nowhere uses it.
 */
function validateAdaptiveBounds(defaults: Policy, services: Readonly<Record<string, Policy>>): void {
  const base = defaults.adaptiveConcurrency;
  if (base !== undefined && base !== false) checkBounds(base, 'defaults.adaptiveConcurrency', false);
  for (const [name, policy] of Object.entries(services)) {
    const own = policy.adaptiveConcurrency;
    if (own === undefined || own === false) continue; // off, or exactly `defaults`' (checked above)
    checkBounds(over(base || {}, own), `services.${name}.adaptiveConcurrency`, base !== undefined && base !== false);
  }
}

function checkBounds(policy: AdaptiveConcurrencyPolicy, where: string, merged: boolean): void {
  const { min, max, initial } = over(DEFAULT_ADAPTIVE_CONCURRENCY, policy);
  // Say where the other bound came from rather than clamp in silence: a lone `max: 10` is below the default min.
  const from = merged ? ' (merged over defaults.adaptiveConcurrency; the built-in defaults are 20, 20 and 200)' : '; the built-in defaults are min 20, initial 20, max 200';
  if (min > max) throw new TypeError(`${where}: min (${min}) must be <= max (${max})${from}`);
  if (initial < min || initial > max) throw new TypeError(`${where}: initial (${initial}) must be from min (${min}) to max (${max})${from}`);
}

/** One layer's `timeout`, and where it sits: a later layer is more specific. */
type TimeoutLayer = readonly [where: string, timeout: Policy['timeout']];

/**
 * `timeout.attemptMs <= timeout.totalMs` as each service and route resolves them. A layer that sets `attemptMs`
 * above the `totalMs` in force for it (its own, one it inherits, or the built-in 30 s) is refused: that bound
 * could never be reached, and a lone `attemptMs: 60_000` that silently ends at 30 s is the usual mistake (the
 * Gateway API refuses `backendRequest` > `request` the same way). A layer that lowers `totalMs` below an
 * `attemptMs` it inherits is not: a route with `totalMs: 2_000` under the default 10 s attempt is the common case,
 * and the call's deadline then caps the attempt (as Envoy's route timeout caps `per_try_timeout`).
 */
function validateTimeouts(defaults: Policy, services: Readonly<Record<string, Policy>>, routes: Readonly<Record<string, readonly RouteSpec[]>>): void {
  const builtIn: TimeoutLayer = ['the built-in default', DEFAULT_TIMEOUT];
  const layersOf = (service: string): TimeoutLayer[] => {
    const own = Object.hasOwn(services, service) ? services[service]!.timeout : undefined;
    return [builtIn, ['defaults.timeout', defaults.timeout], [`services.${service}.timeout`, own]];
  };
  checkTimeout([builtIn, ['defaults.timeout', defaults.timeout]]);
  for (const name of Object.keys(services)) checkTimeout(layersOf(name));
  for (const [service, list] of Object.entries(routes)) {
    // createMesh runs this before it validates `routes` (validateRouting): a shape it does not know is left to that.
    if (!Array.isArray(list)) continue;
    list.forEach((route: RouteSpec | null, i) => {
      if (route === null || typeof route !== 'object' || route.timeout === undefined) return;
      // A route's timeout lays over the policy of each service it sends to (its own, or another's).
      const backends = Array.isArray(route.backends) ? route.backends : [];
      const targets = new Set([service, ...backends.flatMap((b) => (typeof b?.service === 'string' ? [b.service] : []))]);
      for (const target of targets) checkTimeout([...layersOf(target), [`routes.${service}[${i}].timeout`, route.timeout]]);
    });
  }
}

function checkTimeout(layers: readonly TimeoutLayer[]): void {
  const attempt = lastSet(layers, 'attemptMs');
  const total = lastSet(layers, 'totalMs');
  if (attempt.value <= total.value || attempt.layer < total.layer) return;
  const at = layers[attempt.layer]![0];
  const totalFrom = total.layer === attempt.layer ? '' : `, from ${layers[total.layer]![0]}`;
  const hint = total.layer === 0 ? `; set ${at}.totalMs too` : '';
  throw new TypeError(
    `${at}: attemptMs (${attempt.value}) must be <= totalMs (${total.value}${totalFrom}): an attempt cannot outlive its call${hint}`,
  );
}

function lastSet(layers: readonly TimeoutLayer[], key: 'attemptMs' | 'totalMs'): { value: number; layer: number } {
  for (let i = layers.length - 1; i >= 0; i--) {
    const value: unknown = layers[i]![1]?.[key];
    if (typeof value === 'number') return { value, layer: i };
  }
  return { value: DEFAULT_TIMEOUT[key], layer: 0 };
}

/** `{ ...base, ...top }`, but a key of `top` whose value is `undefined` does not hide the one of `base`. */
function over<T extends object>(base: T, top: Partial<T>): T {
  const out = { ...base };
  for (const [k, v] of Object.entries(top)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
