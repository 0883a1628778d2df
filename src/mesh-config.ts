import { ConfigStore, type PendingConfig } from './config/store.js';
import type { ConfigSource, MeshConfigInput } from './config/types.js';
import { MeshClosedError } from './errors.js';
import type { MeshEmitter } from './observe/emitter.js';

/**
 * Builds what a prepared configuration gives every live service (their new plans: this may throw) and returns
 * the function that puts them in force (which does not throw), and returns the services' names.
 */
export type StageConfig = (pending: PendingConfig) => () => readonly string[];

/**
 * The mesh's controller: the configuration store, the config sources that feed it, and what a change does.
 * A change goes in three steps: validate and merge (`prepare`), build every live service's new plan (`stage`),
 * then commit and assign. A failure in either of the first two changes nothing, not even the version: a
 * `TypeError` from `configure`, a `config-error` for a source (last good wins). A source that fails or goes quiet
 * leaves everything in force as well.
 */
export class MeshController {
  readonly store: ConfigStore;
  private readonly stops: (() => void)[] = [];
  private readonly sources: ConfigSource[] = [];
  private closed = false;

  constructor(
    initial: MeshConfigInput,
    private readonly events: MeshEmitter,
    private readonly stage: StageConfig,
  ) {
    this.store = new ConfigStore(initial);
  }

  /** `mesh.configure`: validated whole first (a `TypeError` changes nothing), then in force for every new call. */
  configure(input: MeshConfigInput): number {
    if (this.closed) throw new MeshClosedError('*');
    return this.apply(this.store.prepareApi(input), 'api');
  }

  /**
   * Starts watching each source. Its name is its `name`, else `source-<i>`; its layer is keyed by its place in
   * the list, so two sources of one name (two `consulConfig`s) never overwrite each other. A source whose `watch`
   * throws is reported as a `config-error` and left out; the others run.
   */
  watch(sources: readonly ConfigSource[]): void {
    sources.forEach((source, key) => {
      const name = source.name ?? `source-${key}`;
      this.sources.push(source);
      try {
        const stop = source.watch(
          (input) => this.fromSource(key, name, input),
          (error) => this.error(name, error),
        );
        if (typeof stop === 'function') this.stops.push(stop);
      } catch (error) {
        this.error(name, error);
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stops.splice(0)) {
      try {
        stop();
      } catch {
        // a source's unsubscribe that throws must not keep the others running
      }
    }
    await Promise.allSettled(this.sources.map((s) => Promise.resolve().then(() => s.close?.())));
  }

  private fromSource(key: number, name: string, input: MeshConfigInput): void {
    if (this.closed) return;
    try {
      this.apply(this.store.prepareSource(key, name, input), name);
    } catch (error) {
      this.error(name, error);
    }
  }

  /** Builds every plan, then commits: in force whole, or (when building throws) not at all. */
  private apply(pending: PendingConfig, source: string): number {
    const assign = this.stage(pending);
    const change = this.store.commit(pending);
    const live = assign();
    if (this.events.has('config-update')) {
      const services = change.defaultsChanged ? [...new Set([...change.services, ...live])] : change.services;
      this.events.emit('config-update', { version: change.version, source, services });
    }
    return change.version;
  }

  private error(source: string, error: unknown): void {
    if (this.closed) return;
    const err = error instanceof Error ? error : new Error(String(error));
    if (this.events.has('config-error')) this.events.emit('config-error', { source, error: err });
  }
}
