import type { Endpoint } from './endpoint.js';
import { EndpointState, type EndpointStateOptions } from './endpoint-state.js';

/** What one discovery update changed. */
export interface EndpointSetChange {
  readonly added: readonly EndpointState[];
  readonly removed: readonly EndpointState[];
  /** Endpoints that stayed but whose description changed (weight, zone, tags or meta); their state is kept. */
  readonly updated: readonly EndpointState[];
}

/**
 * The endpoints of one service, keyed by endpoint id. Applying a discovery update keeps the state
 * (in-flight count, EWMA, breaker) of every endpoint that stays, creates state for new ones and
 * retires the ones that left (`removed = true`; their attempts in flight still finish and record).
 *
 * An id that comes back with another host or port is a different backend under a reused name, so it
 * gets fresh state: the old one is retired and a new one added (gRPC keys subchannels by address too).
 */
export class EndpointSet {
  private readonly byId = new Map<string, EndpointState>();
  /** Current endpoints, in discovery order. Replaced (never mutated) on update, so pickers may hold it. */
  states: readonly EndpointState[] = [];

  constructor(private readonly options: EndpointStateOptions) {}

  apply(endpoints: readonly Endpoint[], now: number): EndpointSetChange {
    const next: EndpointState[] = [];
    const added: EndpointState[] = [];
    const removed: EndpointState[] = [];
    const updated: EndpointState[] = [];
    const seen = new Set<string>();
    for (const endpoint of endpoints) {
      if (seen.has(endpoint.id)) continue; // a registry listing an instance twice must not double its share
      seen.add(endpoint.id);
      let state = this.byId.get(endpoint.id);
      if (state !== undefined && (state.endpoint.host !== endpoint.host || state.endpoint.port !== endpoint.port)) {
        state.removed = true;
        removed.push(state);
        state = undefined;
      }
      if (state === undefined) {
        state = new EndpointState(endpoint, this.options, now);
        this.byId.set(endpoint.id, state);
        added.push(state);
      } else if (state.endpoint !== endpoint) {
        if (describedDifferently(state.endpoint, endpoint)) updated.push(state);
        state.update(endpoint);
      }
      next.push(state);
    }
    for (const [id, state] of this.byId) {
      if (!seen.has(id)) {
        this.byId.delete(id);
        state.removed = true;
        removed.push(state);
      }
    }
    this.states = next;
    return { added, removed, updated };
  }

  get(id: string): EndpointState | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.states.length;
  }
}

function describedDifferently(a: Endpoint, b: Endpoint): boolean {
  return a.weight !== b.weight || a.zone !== b.zone || !sameList(a.tags, b.tags) || !sameRecord(a.meta, b.meta);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
