import type { Endpoint } from './endpoint.js';
import { EndpointState, type EndpointStateOptions } from './endpoint-state.js';

/** What one discovery update changed. */
export interface EndpointSetChange {
  readonly added: readonly EndpointState[];
  readonly removed: readonly EndpointState[];
}

/**
 * The endpoints of one service, keyed by endpoint id. Applying a discovery update keeps the state
 * (in-flight count, EWMA, breaker) of every endpoint that stays, creates state for new ones and
 * retires the ones that left.
 */
export class EndpointSet {
  private readonly byId = new Map<string, EndpointState>();
  /** Current endpoints, in discovery order. Replaced (never mutated) on update, so pickers may hold it. */
  states: readonly EndpointState[] = [];

  constructor(private readonly options: EndpointStateOptions) {}

  apply(endpoints: readonly Endpoint[], now: number): EndpointSetChange {
    const next: EndpointState[] = [];
    const added: EndpointState[] = [];
    const seen = new Set<string>();
    for (const endpoint of endpoints) {
      if (seen.has(endpoint.id)) continue; // a registry listing an instance twice must not double its share
      seen.add(endpoint.id);
      let state = this.byId.get(endpoint.id);
      if (state) {
        state.update(endpoint);
      } else {
        state = new EndpointState(endpoint, this.options, now);
        this.byId.set(endpoint.id, state);
        added.push(state);
      }
      next.push(state);
    }
    const removed: EndpointState[] = [];
    for (const [id, state] of this.byId) {
      if (!seen.has(id)) {
        this.byId.delete(id);
        state.removed = true;
        removed.push(state);
      }
    }
    this.states = next;
    return { added, removed };
  }

  get(id: string): EndpointState | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.states.length;
  }
}
