import { ConfigStore, type ConfigChange } from './config/store.js';
import type { ConfigSource, MeshConfigInput } from './config/types.js';
import type { MeshEmitter } from './observe/emitter.js';

/**
 * The mesh's controller: the configuration store, the config sources that feed it, and what a change does
 * (every live service takes its new plan, then `config-update`). A source's update that does not validate is a
 * `config-error`, and the last good configuration stays in force; so does everything when a source fails or
 * goes quiet (last good wins).
 */
export class MeshController {
  readonly store: ConfigStore;
  private readonly stops: (() => void)[] = [];
  private readonly sources: ConfigSource[] = [];
  private closed = false;

  constructor(
    initial: MeshConfigInput,
    private readonly events: MeshEmitter,
    /** Gives every live service its configuration from the store (after a change); returns their names. */
    private readonly apply: () => readonly string[],
  ) {
    this.store = new ConfigStore(initial);
  }

  /** `mesh.configure`: validated whole first (a `TypeError` changes nothing), then in force for every new call. */
  configure(input: MeshConfigInput): number {
    const change = this.store.setApi(input);
    this.changed(change, 'api');
    return change.version;
  }

  /** Starts watching each source; its name is its `name`, else `source-<i>`. */
  watch(sources: readonly ConfigSource[]): void {
    sources.forEach((source, i) => {
      const name = source.name ?? `source-${i}`;
      this.sources.push(source);
      const stop = source.watch(
        (input) => this.fromSource(name, input),
        (error) => this.error(name, error),
      );
      if (typeof stop === 'function') this.stops.push(stop);
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

  private fromSource(name: string, input: MeshConfigInput): void {
    if (this.closed) return;
    let change: ConfigChange;
    try {
      change = this.store.setSource(name, input);
    } catch (error) {
      this.error(name, error);
      return;
    }
    this.changed(change, name);
  }

  private changed(change: ConfigChange, source: string): void {
    const live = this.apply();
    if (this.events.has('config-update')) {
      const services = change.defaultsChanged ? [...new Set([...change.services, ...live])] : change.services;
      this.events.emit('config-update', { version: change.version, source, services });
    }
  }

  private error(source: string, error: unknown): void {
    if (this.closed) return;
    const err = error instanceof Error ? error : new Error(String(error));
    if (this.events.has('config-error')) this.events.emit('config-error', { source, error: err });
  }
}
