import type { Endpoint } from '../endpoint/endpoint.js';

/**
 * Where endpoints come from. Any object of this shape is a custom adapter.
 *
 * @example
 * const registry: Registry = {
 *   async resolve(service, { signal }) {
 *     const res = await fetch(`http://127.0.0.1:8500/v1/health/service/${service}`, { signal });
 *     return toEndpoints(await res.json());
 *   },
 * };
 */
export interface Registry {
  /** The current endpoints of `service`. An empty list means "none"; a rejection means "failed". */
  resolve(service: string, ctx: { signal: AbortSignal }): Promise<readonly Endpoint[]>;
  /**
   * Optional push: call `onUpdate` on every change, `onError` when the source fails (the last good list
   * keeps serving). Returns an unsubscribe function. The mesh resolves once, then relies on the watch.
   */
  watch?(service: string, onUpdate: (endpoints: readonly Endpoint[]) => void, onError: (error: Error) => void): () => void;
  /** Called by `mesh.close()`. */
  close?(): void | Promise<void>;
}
