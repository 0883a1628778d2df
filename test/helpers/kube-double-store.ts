/**
 * The double's etcd: EndpointSlices by namespace and name, one cluster-wide resourceVersion counter, and the
 * history of changes a watch replays from its resourceVersion. Every change is handed to `onEvent` at once.
 */
import { randomUUID } from 'node:crypto';
import { digest, LABEL, splitService, wantedSlices, type EndpointSpec, type Json, type SetEndpointsOptions } from './kube-double-objects.js';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface HistoryEvent {
  readonly rv: number;
  readonly namespace: string;
  readonly type: ChangeType;
  readonly object: Json;
}

const sliceContent = (o: Json): string => JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined, generation: undefined } });

export class SliceStore {
  /** The current resourceVersion (etcd's revision). */
  rv = 100;
  readonly history: HistoryEvent[] = [];
  private readonly store = new Map<string, { object: Json; namespace: string }>(); // `${ns}/${name}`
  /** Slice names by `${ns}/${service}` and group key, so setEndpoints updates slices instead of replacing them. */
  private readonly groups = new Map<string, Map<string, string>>();

  constructor(private readonly onEvent: (type: ChangeType, namespace: string, object: Json) => void) {}

  /** The stored slice objects of a namespace (and of a service label, if given), as stored (not copies). */
  list(namespace: string, service?: string): Json[] {
    return [...this.store.values()].filter((s) => s.namespace === namespace && (service === undefined || s.object.metadata?.labels?.[LABEL] === service)).map((s) => s.object);
  }

  /** Moves the resourceVersion on without a change (a compaction does). */
  bump(): void {
    this.rv++;
  }

  put(namespace: string, slice: Json): 'ADDED' | 'MODIFIED' {
    const name = String(slice?.metadata?.name ?? '');
    if (name === '') throw new Error('kube-double: a slice needs metadata.name');
    const key = `${namespace}/${name}`;
    const existing = this.store.get(key);
    this.rv++;
    const object: Json = structuredClone(slice);
    object.metadata = {
      uid: existing?.object.metadata?.uid ?? randomUUID(),
      creationTimestamp: existing?.object.metadata?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      generation: (existing?.object.metadata?.generation ?? 0) + 1,
      ...object.metadata,
      namespace,
      resourceVersion: String(this.rv),
    };
    delete object.kind;
    delete object.apiVersion;
    this.store.set(key, { object, namespace });
    const type = existing ? 'MODIFIED' : 'ADDED';
    this.emit(type, namespace, object);
    return type;
  }

  delete(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const existing = this.store.get(key);
    if (!existing) return false;
    this.store.delete(key);
    this.rv++;
    // A DELETED event carries the object's last state, at the deletion's resourceVersion.
    this.emit('DELETED', namespace, { ...existing.object, metadata: { ...existing.object.metadata, resourceVersion: String(this.rv) } });
    return true;
  }

  /** Makes `service` have exactly these endpoints, as the EndpointSlice controller would: slices created, updated, deleted. */
  setEndpoints(service: string, endpoints: readonly EndpointSpec[], opts: SetEndpointsOptions = {}): void {
    const [namespace, name] = splitService(service);
    const serviceKey = `${namespace}/${name}`;
    const known = this.groups.get(serviceKey) ?? new Map<string, string>();
    this.groups.set(serviceKey, known);
    const wanted = new Set<string>();
    for (const { groupKey, slice } of wantedSlices(service, endpoints, opts)) {
      wanted.add(groupKey);
      let sliceName = known.get(groupKey);
      if (sliceName === undefined) {
        sliceName = `${name}-${digest(`${serviceKey}/${groupKey}/${randomUUID()}`).slice(0, 5)}`;
        known.set(groupKey, sliceName);
      }
      const named = { ...slice, metadata: { name: sliceName, ...slice.metadata } };
      const existing = this.store.get(`${namespace}/${sliceName}`);
      if (existing) {
        const next = { ...named, metadata: { ...existing.object.metadata, ...named.metadata } };
        if (sliceContent(next) === sliceContent(existing.object)) continue; // no change, no event
      }
      this.put(namespace, named);
    }
    for (const [groupKey, sliceName] of [...known]) {
      if (wanted.has(groupKey)) continue;
      known.delete(groupKey);
      this.delete(namespace, sliceName);
    }
  }

  private emit(type: ChangeType, namespace: string, object: Json): void {
    this.history.push({ rv: this.rv, namespace, type, object });
    this.onEvent(type, namespace, object);
  }
}
