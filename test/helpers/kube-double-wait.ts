/** Bounded waits against the Kubernetes API double: polling an assertion, and a deterministic settle. */
import type { KubernetesLoopState } from '../../src/discovery/kubernetes/loop.js';
import type { KubeDouble } from './kube-double-types.js';
import { waitUntil as waitFor } from './wait-until.js';

export { waitFor };

/**
 * Resolves once the registry has received everything the double sent: the double has no write pending on any
 * watch, and every service in `services` that has a loop is either backing off (no request of it in flight) or
 * watching, with its watch open on the double, at the cluster's current resourceVersion: a BOOKMARK sent at that
 * resourceVersion has made the round trip (a watch delivers in order, so whatever was written before the
 * bookmark has been handled too). Bounded by `timeoutMs` (then the last mismatch is thrown).
 */
export async function settled(api: KubeDouble, registry: { watchState(service: string): KubernetesLoopState | undefined }, services: readonly string[], timeoutMs = 2_000): Promise<void> {
  await waitFor(() => {
    if (api.pendingWrites() > 0) throw new Error(`the double has ${api.pendingWrites()} bytes not yet written`);
    const rv = api.resourceVersion();
    const open = new Set(api.openWatches().map((w) => (w.namespace === 'default' ? w.service : `${w.service}.${w.namespace}`)));
    const behind = services.filter((s) => {
      const state = registry.watchState(s);
      if (state === undefined || state.kind === 'backing-off') return false; // nothing in flight
      return !(state.kind === 'watching' && state.resourceVersion === rv && open.has(s));
    });
    if (behind.length > 0) {
      api.bookmark(); // the round trip: each open watch hears the current resourceVersion
      throw new Error(`not settled at resourceVersion ${rv}: ${behind.map((s) => `${s} ${JSON.stringify(registry.watchState(s))}`).join(', ')}`);
    }
  }, timeoutMs);
}
