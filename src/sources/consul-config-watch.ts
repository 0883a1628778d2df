import type { MeshConfigInput, RouteSpec, SubsetSpec } from '../config/types.js';
import type { ConsulConnection } from '../discovery/consul-config.js';
import { ConsulError, redactError } from '../discovery/consul-http.js';
import { BlockingLoop, type LoopTiming } from '../discovery/consul-watch.js';
import type { Policy } from '../options.js';
import { define, ownOrDefine } from '../util/own.js';
import type { ChainMapping, ConsulSubset } from './consul-chain.js';
import { chainQuery, subsetQuery, type QuerySettings } from './consul-queries.js';

interface SubsetWatch {
  loop: BlockingLoop<readonly string[]> | undefined;
  /** The ids Consul's filter selected, once it answered. */
  ids: readonly string[] | undefined;
}

/** A filtered subset's loop key: one loop per (service, filter, onlyPassing), whatever the subsets are named. */
const subsetKey = (service: string, s: ConsulSubset): string => JSON.stringify([service, s.filter, s.onlyPassing]);

/**
 * One `watch()` of {@link consulConfig}: a blocking loop over the discovery chain of each governed service, and
 * one over the health entries of each filtered resolver subset the chains name (started as a chain names it,
 * stopped as soon as none does). After every change it pushes the whole configuration, but only once every chain
 * answered and every filtered subset has its ids (a partial configuration would route to empty subsets), and only
 * when it differs from the last one pushed. A failed query pushes nothing: what is in force stays.
 */
export class ConfigWatch {
  private readonly chains = new Map<string, { readonly mapping: ChainMapping; readonly key: string } | undefined>();
  private readonly chainLoops: BlockingLoop<ChainMapping>[] = [];
  private readonly subsets = new Map<string, SubsetWatch>();
  private last: string | undefined;
  private stopped = false;

  constructor(
    private readonly conn: ConsulConnection,
    private readonly settings: QuerySettings,
    private readonly timing: LoopTiming,
    services: readonly string[],
    private readonly onUpdate: (config: MeshConfigInput) => void,
    private readonly onError: (error: Error) => void,
  ) {
    for (const service of services) this.chains.set(service, undefined);
    for (const service of services) {
      const loop = new BlockingLoop(chainQuery(conn, settings, service), timing, ({ value }) => this.chainAnswered(service, value), (e) => this.report(e));
      this.chainLoops.push(loop);
    }
  }

  /** Stops every loop: requests in flight are aborted, timers cleared. */
  stop(): void {
    this.stopped = true;
    for (const loop of this.chainLoops) loop.stop();
    for (const watch of this.subsets.values()) watch.loop?.stop();
    this.subsets.clear();
  }

  private chainAnswered(service: string, mapping: ChainMapping): void {
    if (this.stopped) return;
    const key = JSON.stringify(mapping);
    if (this.chains.get(service)?.key === key) return; // a wait that expired, or a change that maps the same
    this.chains.set(service, { mapping, key });
    if (mapping.warnings.length > 0) {
      const list = mapping.warnings.join('; ');
      this.report(new ConsulError(service, `consulConfig: the discovery chain of ${service} asks for what proxyless cannot express; the rest is used: ${list}`));
    }
    this.reconcileSubsets();
    this.publish();
  }

  /** Starts a loop for each filtered subset some chain names, and stops the ones none names any more. */
  private reconcileSubsets(): void {
    const needed = new Map<string, { service: string; subset: ConsulSubset }>();
    for (const entry of this.chains.values()) {
      for (const [service, byName] of Object.entries(entry?.mapping.subsets ?? {})) {
        for (const subset of Object.values(byName)) if (subset.filter !== '') needed.set(subsetKey(service, subset), { service, subset });
      }
    }
    for (const [key, watch] of this.subsets) {
      if (needed.has(key)) continue;
      watch.loop?.stop();
      this.subsets.delete(key);
    }
    for (const [key, { service, subset }] of needed) {
      if (this.subsets.has(key)) continue;
      const watch: SubsetWatch = { loop: undefined, ids: undefined };
      this.subsets.set(key, watch);
      const current = (): boolean => !this.stopped && this.subsets.get(key) === watch;
      watch.loop = new BlockingLoop(
        subsetQuery(this.conn, this.settings, service, subset),
        this.timing,
        ({ value }) => {
          if (!current() || (watch.ids !== undefined && JSON.stringify(watch.ids) === JSON.stringify(value))) return;
          watch.ids = value;
          this.publish();
        },
        (e) => {
          if (current()) this.report(e);
        },
      );
    }
  }

  private publish(): void {
    if (this.stopped) return;
    // Own properties only (define, ownOrDefine): a service or subset named `__proto__` or `constructor` is a key
    // like any other, and never reaches a prototype.
    const services: Record<string, Policy> = {};
    const routes: Record<string, RouteSpec[]> = {};
    const subsets: Record<string, Record<string, SubsetSpec>> = {};
    for (const [service, entry] of this.chains) {
      if (entry === undefined) return; // not every chain answered yet
      define(services, service, entry.mapping.policy);
      define(routes, service, entry.mapping.routes);
      ownOrDefine(subsets, service, () => ({}));
    }
    for (const entry of this.chains.values()) {
      for (const [owner, byName] of Object.entries(entry!.mapping.subsets)) {
        for (const [name, subset] of Object.entries(byName)) {
          let spec: SubsetSpec = {};
          if (subset.filter !== '') {
            const ids = this.subsets.get(subsetKey(owner, subset))?.ids;
            if (ids === undefined) return; // its first answer is on the way
            spec = { ids: [...ids] };
          }
          const byName = ownOrDefine(subsets, owner, () => ({}));
          if (!Object.hasOwn(byName, name)) define(byName, name, spec);
        }
      }
    }
    const json = JSON.stringify({ services, routes, subsets });
    if (json === this.last) return;
    this.last = json;
    try {
      // A copy of its own: what the mesh does with it cannot reach this watch's state.
      this.onUpdate(JSON.parse(json) as MeshConfigInput);
    } catch (error) {
      this.report(error);
    }
  }

  /** To onError, the token redacted from the message, stack and cause chain; an onError that throws is ignored. */
  private report(error: unknown): void {
    if (this.stopped) return;
    const plain = error instanceof Error ? error : new Error(String(error));
    call(this.onError, redactError(plain, this.conn.token) as Error);
  }
}

function call(onError: (error: Error) => void, error: Error): void {
  try {
    onError(error);
  } catch {
    // the source's caller owns its handler's failures
  }
}
