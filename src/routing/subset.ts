import type { Endpoint } from '../endpoint/endpoint.js';
import type { SubsetSpec } from '../config/types.js';

/**
 * A subset's label filter, compiled once per configuration: an endpoint is a member when it has every tag,
 * every meta value, and (when `ids` is given) one of the ids. Envoy's subset load balancer and Consul's
 * resolver subsets select by metadata the same way; membership is recomputed only when discovery or the
 * configuration changes, never per call.
 */
export class SubsetFilter {
  private readonly tags: readonly string[];
  private readonly meta: readonly (readonly [string, string])[];
  private readonly ids: ReadonlySet<string> | undefined;

  constructor(spec: SubsetSpec) {
    this.tags = spec.tags ?? [];
    this.meta = Object.entries(spec.meta ?? {});
    this.ids = spec.ids === undefined ? undefined : new Set(spec.ids);
  }

  has(endpoint: Endpoint): boolean {
    if (this.ids !== undefined && !this.ids.has(endpoint.id)) return false;
    for (const tag of this.tags) if (!endpoint.tags.includes(tag)) return false;
    for (const [key, value] of this.meta) if (!Object.hasOwn(endpoint.meta, key) || endpoint.meta[key] !== value) return false;
    return true;
  }
}
