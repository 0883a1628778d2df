import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';

/** nginx's `current_weight` of one peer; an object, so that the aligned view can share it by reference. */
interface Slot {
  current: number;
}

/** Most work (candidates × simulated picks) spent on skipping to the random start offset. */
const OFFSET_BUDGET = 1 << 16;

/**
 * Smooth weighted round robin, as nginx does it (`ngx_http_upstream_get_peer` in
 * `src/http/ngx_http_upstream_round_robin.c`): on each pick every candidate's `current` grows by its
 * weight, the largest `current` wins, and the winner gives back the total. Weights {a: 5, b: 1, c: 1}
 * give `a a b a c a a`: a heavy endpoint's turns are spread out, not sent in a burst.
 *
 * Endpoints already tried in this call sit the pick out, as nginx skips tried peers: they neither gain
 * weight nor count in the total, so the others keep their relative order and the sum of `current`
 * stays 0 (later first attempts are not skewed).
 *
 * So that many clients started together do not move in lockstep, each instance starts at a random point of
 * the sequence (it simulates `floor(rng() × period)` picks before the first real one, and again after an
 * update brings new endpoints) and breaks ties from a random position in the list (which covers the start
 * offset when the list is too long to simulate cheaply). With an `rng` that returns 0, it is exactly nginx.
 *
 * @example
 * createMesh({ registry, services: { users: { balancer: 'round-robin' } } });
 */
export class RoundRobinBalancer implements Balancer {
  readonly name = 'round-robin';
  /** By endpoint state, so an endpoint that stays across `update()` keeps its place; departed ones are collected. */
  private readonly slots = new WeakMap<EndpointState, Slot>();
  /** The candidate list last seen and its slots in the same order: the no-allocation path while it is unchanged. */
  private view: EndpointState[] = [];
  private viewSlots: Slot[] = [];
  /** Where tie-breaking starts, as a fraction of the list length. */
  private readonly rotation: number;
  /** A new endpoint appeared: skip to a random point before the next pick. */
  private pendingOffset = true;

  constructor(private readonly rng: Rng) {
    this.rotation = rng();
  }

  update(endpoints: readonly EndpointState[]): void {
    for (let i = 0; i < endpoints.length; i++) this.slotOf(endpoints[i] as EndpointState);
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    this.align(endpoints);
    if (this.pendingOffset) this.skipToOffset();
    const i = this.step(request);
    return i < 0 ? undefined : this.view[i];
  }

  private slotOf(state: EndpointState): Slot {
    let slot = this.slots.get(state);
    if (slot === undefined) {
      slot = { current: 0 };
      this.slots.set(state, slot);
      this.pendingOffset = true;
    }
    return slot;
  }

  /** Lines `viewSlots` up with the candidates; the callers' lists may be new arrays with the same entries. */
  private align(endpoints: readonly EndpointState[]): void {
    const view = this.view;
    if (endpoints.length === view.length) {
      let i = 0;
      while (i < view.length && endpoints[i] === view[i]) i++;
      if (i === view.length) return;
    }
    this.view = endpoints.slice();
    this.viewSlots = this.view.map((s) => this.slotOf(s));
  }

  private skipToOffset(): void {
    const view = this.view;
    const n = view.length;
    if (n === 0) return; // stays pending until there is something to offset
    this.pendingOffset = false;
    let total = 0;
    let min = Infinity;
    for (let i = 0; i < n; i++) {
      const w = (view[i] as EndpointState).weight;
      total += w;
      if (w < min) min = w;
    }
    if (!(min > 0)) return;
    // The sequence repeats every total ÷ gcd(weights) picks; total ÷ min is that when the weights are
    // multiples of the smallest, and does not grow when all weights are scaled up.
    const span = Math.min(Math.ceil(total / min), Math.max(1, Math.floor(OFFSET_BUDGET / n)));
    const steps = Math.floor(this.rng() * span);
    for (let k = 0; k < steps; k++) this.step(undefined);
  }

  /** One nginx pick over the view, skipping `request.tried`; the chosen index, or -1 if none is left. */
  private step(request: PickRequest | undefined): number {
    const view = this.view;
    const slots = this.viewSlots;
    const n = view.length;
    
    let i = Math.floor(this.rotation * n);
    let best: Slot | undefined;
    let bestIndex = -1;
    let total = 0;
    for (let k = 0; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      const state = view[i] as EndpointState;
      if (request !== undefined && isExcluded(state, request)) continue;
      const slot = slots[i] as Slot;
      slot.current += state.weight;
      total += state.weight;
      // Strictly greater: ties go to the earliest in scan order, as in nginx.
      if (best === undefined || slot.current > best.current) {
        best = slot;
        bestIndex = i;
      }
    }
    if (best !== undefined) best.current -= total;
    return bestIndex;
  }
}
