import type { EndpointState } from '../endpoint/endpoint-state.js';

/**
 * The endpoint list a hash balancer's table was built from, with their configured weights: tells whether
 * a list handed to `update()` or `pick()` needs a rebuild. A new array with the same endpoints and weights
 * (discovery re-sent an unchanged list) is adopted without one. Effective weights (slow start) are not
 * looked at: hash tables ignore slow start, as Envoy's do.
 */
export class TableSource {
  endpoints: readonly EndpointState[] = [];
  private weights: number[] = [];

  /** True when `endpoints` differs from the source in members, order or configured weights. */
  changed(endpoints: readonly EndpointState[]): boolean {
    if (endpoints === this.endpoints) return false;
    const n = endpoints.length;
    if (n !== this.weights.length) return true;
    for (let i = 0; i < n; i++) {
      const s = endpoints[i] as EndpointState;
      if (s !== this.endpoints[i] || s.endpoint.weight !== this.weights[i]) return true;
    }
    this.endpoints = endpoints;
    return false;
  }

  /** Records the list a table is being built from. */
  set(endpoints: readonly EndpointState[]): void {
    this.endpoints = endpoints;
    this.weights = endpoints.map((s) => s.endpoint.weight);
  }
}
