/**
 * What every watching registry (Consul, Kubernetes, etcd) does with the meshes subscribed to one service's loop:
 * tell each of a new list or an error, whatever another subscriber's callback throws, and tell a list apart from
 * the one before.
 */
import type { Endpoint } from '../endpoint/endpoint.js';

export type OnUpdate = (endpoints: readonly Endpoint[]) => void;
export type OnError = (error: Error) => void;

export interface Subscriber {
  readonly onUpdate: OnUpdate;
  readonly onError: OnError;
}

/** Hands `list` to one subscriber; an `onUpdate` that throws hears its own error (and one that throws again, nothing). */
export function deliver(subscriber: Subscriber, list: readonly Endpoint[]): void {
  try {
    subscriber.onUpdate(list);
  } catch (error) {
    try {
      subscriber.onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // nothing more to tell
    }
  }
}

/**
 * Hands `list` to every subscriber, over a copy of the set (a callback may unsubscribe itself or another),
 * skipping one removed meanwhile; whatever one callback throws, the others still hear.
 */
export function publishList(subscribers: Set<Subscriber>, list: readonly Endpoint[]): void {
  for (const subscriber of [...subscribers]) if (subscribers.has(subscriber)) deliver(subscriber, list);
}

/** Hands `error` to every subscriber; one that throws is its own business, the others still hear. */
export function publishError(subscribers: Set<Subscriber>, error: Error): void {
  for (const subscriber of [...subscribers]) {
    if (!subscribers.has(subscriber)) continue;
    try {
      subscriber.onError(error);
    } catch {
      // nothing more to tell
    }
  }
}

/** A list's identity for "did it change": order-insensitive, every field an endpoint carries. */
export function endpointsKey(list: readonly Endpoint[]): string {
  const rows = list.map((e) => [e.id, e.host, e.port, e.weight, e.zone ?? null, e.tags, Object.entries(e.meta).sort()]);
  rows.sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : (a[0] as string) > (b[0] as string) ? 1 : 0));
  return JSON.stringify(rows);
}
