/**
 * The list+watch loops of one registry: one per watched service, shared by every subscriber (every mesh using
 * the registry), as consul-watch.ts's WatchHub shares its blocking queries. A loop starts with the first
 * subscriber (from what resolve() just listed, when that is recent) and stops with the last.
 */
import type { Endpoint } from '../../endpoint/endpoint.js';
import { deliver, publishError, publishList, type OnError, type OnUpdate, type Subscriber } from '../subscribers.js';
import type { KubernetesLoopState, ListWatchLoop, SliceSnapshot } from './loop.js';

interface Shared {
  readonly subscribers: Set<Subscriber>;
  loop: ListWatchLoop | undefined;
}

/** Makes a service's loop; its handlers publish to the hub. */
export type LoopFactory = (service: string, seed: SliceSnapshot | undefined, publish: { update: OnUpdate; error: OnError }) => ListWatchLoop;

/** A resolve() result younger than this starts the watch from its resourceVersion instead of a new list. */
const SEED_MAX_AGE_MS = 10_000;
const MAX_SEEDS = 1_024;

export class LoopHub {
  private readonly shared = new Map<string, Shared>();
  private readonly seeds = new Map<string, { snapshot: SliceSnapshot; at: number }>();

  constructor(
    private readonly makeLoop: LoopFactory,
    private readonly now: () => number,
    /** Called when the last loop stops. */
    private readonly onIdle: () => void = () => {},
  ) {}

  /** Notes what resolve() listed, so that a watch starting soon after begins from there. */
  seed(service: string, snapshot: SliceSnapshot): void {
    this.seeds.delete(service);
    if (this.seeds.size >= MAX_SEEDS) this.seeds.delete(this.seeds.keys().next().value as string);
    this.seeds.set(service, { snapshot, at: this.now() });
  }

  /** The endpoints a running loop last published, if any. */
  current(service: string): readonly Endpoint[] | undefined {
    return this.shared.get(service)?.loop?.endpoints;
  }

  stateOf(service: string): KubernetesLoopState | undefined {
    return this.shared.get(service)?.loop?.state;
  }

  loopOf(service: string): ListWatchLoop | undefined {
    return this.shared.get(service)?.loop;
  }

  get size(): number {
    return this.shared.size;
  }

  subscribe(service: string, onUpdate: OnUpdate, onError: OnError): () => void {
    const subscriber: Subscriber = { onUpdate, onError };
    let shared = this.shared.get(service);
    if (shared === undefined) {
      const created: Shared = { subscribers: new Set([subscriber]), loop: undefined };
      shared = created;
      this.shared.set(service, created);
      const seed = this.seeds.get(service);
      this.seeds.delete(service);
      const fresh = seed !== undefined && this.now() - seed.at <= SEED_MAX_AGE_MS ? seed.snapshot : undefined;
      created.loop = this.makeLoop(service, fresh, {
        update: (list) => {
          publishList(created.subscribers, list);
        },
        error: (error) => publishError(created.subscribers, error),
      });
    } else {
      shared.subscribers.add(subscriber);
      // A late subscriber may have resolved before the loop's last change: hand it the current list.
      const current = shared.loop?.endpoints;
      const joined = shared;
      if (current !== undefined) {
        queueMicrotask(() => {
          if (joined.subscribers.has(subscriber) && joined.loop?.endpoints === current) deliver(subscriber, current);
        });
      }
    }
    const mine = shared;
    return () => {
      if (!mine.subscribers.delete(subscriber) || mine.subscribers.size > 0) return;
      mine.loop?.stop();
      if (this.shared.get(service) === mine) this.shared.delete(service);
      if (this.shared.size === 0) this.onIdle();
    };
  }

  /**
   * Forgets the seeds. Loops still subscribed are left alone: the mesh unsubscribes before it closes the
   * registry, and calls close() even when it shares the registry, so what still runs belongs to another mesh
   * (consul-watch.ts does the same). The last unsubscribe stops each loop.
   */
  close(): void {
    this.seeds.clear();
  }
}
