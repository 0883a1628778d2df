import { MeshClosedError, NoEndpointsError } from './errors.js';
import type { RouteSpec } from './config/types.js';
import type { Service } from './service.js';

/** What `mesh.warmup` needs of the mesh. */
export interface WarmupDeps {
  /** The service of this name, made on first use (throws `InvalidServiceNameError` for a bad name). */
  readonly service: (name: string) => Service;
  /** The routes in force for a service, if any. */
  readonly routes: (name: string) => readonly RouteSpec[] | undefined;
  readonly now: () => number;
  readonly isClosed: () => boolean;
}

/**
 * `mesh.warmup(services)`: resolves every name at once and waits for all of them (a slow one does not hide a
 * failing one), then reports every name that ended with nothing usable, in the order given. A name that
 * discovery answers with an empty list is a `NoEndpointsError`, as its first call would be: a typo in a warmup
 * list must not pass for a warm service. A service whose routes send to other services is warm when those are:
 * they are warmed with it, and an empty list of its own is then no error (its traffic goes elsewhere).
 *
 * One failing name rejects with its own error (`NoEndpointsError`, `DiscoveryError`, `InvalidServiceNameError`),
 * so `error.code` and `error.service` work as for a call; several reject with an `AggregateError` of them all,
 * as `Promise.any` does, whose message names each. After `close()` (or when it runs meanwhile) it rejects with
 * `MeshClosedError`.
 */
export async function warmup(names: readonly string[], deps: WarmupDeps): Promise<void> {
  if (!Array.isArray(names)) throw new TypeError('warmup(services): services must be an array of service names');
  if (deps.isClosed()) throw closedError(names);
  const wanted = [...new Set(names)];
  const routed = new Map<string, readonly string[]>();
  for (const name of wanted) routed.set(name, routedServices(name, deps.routes));
  const all = [...new Set([...wanted, ...[...routed.values()].flat()])];
  const outcomes = await Promise.all(all.map((name) => warmOne(name, deps)));
  if (deps.isClosed()) throw closedError(names);
  const failed = new Map<string, unknown>();
  all.forEach((name, i) => {
    const outcome = outcomes[i]!;
    if (outcome === 'empty' && (routed.get(name)?.length ?? 0) === 0) failed.set(name, new NoEndpointsError(name, 'discovery returned no endpoints (warmup)'));
    else if (outcome !== 'ok' && outcome !== 'empty') failed.set(name, outcome.error);
  });
  if (failed.size === 0) return;
  const errors = [...failed.values()];
  if (errors.length === 1) throw errors[0];
  const list = [...failed].map(([name, e]) => `'${name}' (${e instanceof Error ? e.message : String(e)})`).join('; ');
  throw new AggregateError(errors, `warmup failed for ${errors.length} services: ${list}`);
}

async function warmOne(name: string, deps: WarmupDeps): Promise<'ok' | 'empty' | { error: unknown }> {
  try {
    const svc = deps.service(name);
    await svc.prepare(deps.now());
    return svc.size > 0 ? 'ok' : 'empty';
  } catch (error) {
    return { error };
  }
}

/** The other services a service's routes send to (backends only: a mirror never carries the caller's traffic). */
function routedServices(name: string, routes: WarmupDeps['routes']): readonly string[] {
  let list: readonly RouteSpec[] | undefined;
  try {
    list = routes(name);
  } catch {
    return []; // a bad name: warmOne reports it
  }
  const out = new Set<string>();
  for (const route of list ?? []) for (const b of route.backends ?? []) if (b.service !== undefined && b.service !== name) out.add(b.service);
  return [...out];
}

function closedError(names: readonly string[]): MeshClosedError {
  return new MeshClosedError(Array.isArray(names) && names.length === 1 ? String(names[0]) : '*');
}
