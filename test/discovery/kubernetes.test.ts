// kubernetesRegistry against the Kubernetes API double (test/helpers/kube-double.ts), on real sockets and real
// time: the requests, the events, 410 Gone, names and ports. Failures: kubernetes-failures.test.ts; credentials
// and TLS: kubernetes-credentials.test.ts. Waits poll, bounded.
import { describe, expect, it } from 'vitest';
import { DiscoveryError } from '../../src/errors.js';
import { waitFor } from '../helpers/kube-double.js';
import { addresses, listRequests, record, signal, stopAfterTest, TOKEN, useKubeTestbed, watchRequests } from '../helpers/kube-double-registry.js';

const t = useKubeTestbed();

describe('kubernetesRegistry: list and watch', () => {
  it('lists with the label selector and the token, then watches from the list resourceVersion with bookmarks', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1', port: 8081, zone: 'a' }, { ip: '127.0.0.2', port: 8081 }]);
    const r = t.registry(d, { watchTimeoutSeconds: 60 });
    const list = await r.resolve('users', { signal: signal() });
    expect(addresses(list)).toEqual(['127.0.0.1:8081', '127.0.0.2:8081']);
    expect(list.find((e) => e.host === '127.0.0.1')!.zone).toBe('a');
    expect(d.requests[0]).toMatchObject({ path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', token: TOKEN, watch: false });
    expect(d.requests[0]!.query.toString()).toBe('labelSelector=kubernetes.io%2Fservice-name%3Dusers');
    const listRv = d.resourceVersion();

    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    const q = watchRequests(d)[0]!.query;
    expect(Object.fromEntries(q)).toMatchObject({ watch: '1', allowWatchBookmarks: 'true', resourceVersion: listRv, labelSelector: 'kubernetes.io/service-name=users' });
    expect(Number(q.get('timeoutSeconds'))).toBeGreaterThanOrEqual(60);
    expect(Number(q.get('timeoutSeconds'))).toBeLessThanOrEqual(120);
    expect(listRequests(d)).toHaveLength(1); // the watch started from resolve()'s list

    d.setEndpoints('users', [{ ip: '127.0.0.1', port: 8081 }, { ip: '127.0.0.2', port: 8081 }, { ip: '127.0.0.3', port: 8081 }]); // MODIFIED
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8081', '127.0.0.2:8081', '127.0.0.3:8081']));
    d.setEndpoints('users', [{ ip: '127.0.0.9', port: 9000 }]); // the 8081 slice DELETED, a 9000 slice ADDED
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.9:9000']));
    // A watched service resolves from the loop's list, without a request.
    const before = d.requests.length;
    expect(addresses(await r.resolve('users', { signal: signal() }))).toEqual(['127.0.0.9:9000']);
    expect(d.requests).toHaveLength(before);
    expect(w.errors).toEqual([]);
    expect(r.watchState('users')).toEqual({ kind: 'watching', resourceVersion: d.resourceVersion() });
  });

  it('shares one list+watch per service between watchers, and a late one gets the current list', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    const a = record(r);
    await waitFor(() => expect(a.last()).toEqual(['127.0.0.1:8080']));
    const b = record(r);
    await waitFor(() => expect(b.last()).toEqual(['127.0.0.1:8080']));
    expect(d.openWatches()).toHaveLength(1);
    a.stop();
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(b.last()).toEqual(['127.0.0.2:8080']));
    expect(a.updates).toHaveLength(1);
    b.stop();
    await waitFor(() => expect(d.openWatches()).toHaveLength(0));
    expect(r.watchState('users')).toBeUndefined();
  });

  it('resumes from a bookmark resourceVersion after a dropped watch, without relisting', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    d.setEndpoints('billing', [{ ip: '127.0.0.5' }]); // moves the cluster's resourceVersion, not seen by this watch
    expect(d.bookmark()).toBe(1);
    const bookmarkRv = d.resourceVersion();
    await waitFor(() => expect(r.watchState('users')).toEqual({ kind: 'watching', resourceVersion: bookmarkRv }));
    const lists = listRequests(d).length;
    d.dropWatches();
    await waitFor(() => expect(watchRequests(d)).toHaveLength(2));
    expect(watchRequests(d)[1]!.query.get('resourceVersion')).toBe(bookmarkRv);
    expect(listRequests(d)).toHaveLength(lists);
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']));
    expect(w.errors).toEqual([]); // one drop, mended: nothing to report
  });

  it('relists on an ERROR 410 event and on an HTTP 410, publishing only what changed', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }, { ip: '127.0.0.2' }]);
    const r = t.registry(d);
    const w = record(r);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8080', '127.0.0.2:8080']));
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    expect(d.expire()).toBe(1); // ERROR {Status 410 Expired} on the open watch
    await waitFor(() => expect(listRequests(d)).toHaveLength(2));
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    expect(w.updates).toHaveLength(1); // the relist found the same set: nothing published

    // The watch dropped (an API server restart), and HTTP 410 to the resumed watch's resourceVersion.
    d.expire({ http: true });
    await waitFor(() => expect(d.requests.some((q) => q.watch && q.status === 410)).toBe(true));
    d.setEndpoints('users', [{ ip: '127.0.0.2' }, { ip: '127.0.0.3' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080', '127.0.0.3:8080']));
    expect(listRequests(d)).toHaveLength(3);
    expect(w.updates.every((u) => u.length > 0)).toBe(true);
    expect(w.errors).toEqual([]);
  });

  it('backs off from a server that ends every watch after one BOOKMARK, instead of reopening it at once', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d, { backoff: {} }); // the default: 1 s, doubling
    d.endWatchesAfterBookmark(true);
    record(r);
    await waitFor(() => expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 2 }), 3_000);
    expect(watchRequests(d)).toHaveLength(2); // (750 a second, before)
    expect(watchRequests(d)[1]!.query.get('resourceVersion')).toBe(d.resourceVersion()); // from the bookmark
    expect(listRequests(d)).toHaveLength(1);
  });

  it('a subscriber that throws hears its own error; the others, and the loop, carry on', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    const thrown: Error[] = [];
    stopAfterTest(
      r.watch('users', () => {
        throw new Error('subscriber bug');
      }, (error) => {
        thrown.push(error);
        throw new Error('and its error handler too');
      }),
    );
    const w = record(r);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8080']));
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']));
    expect(thrown.map((e) => e.message)).toEqual(['subscriber bug', 'subscriber bug']);
    expect(r.watchState('users')?.kind).toBe('watching');
  });

  it('a list answered 410 (the Status of NewResourceExpired) fails resolve() with it', async () => {
    const d = await t.double();
    d.respondWith(410, 'too old resource version: 5 (900)', { only: 'list' });
    await expect(t.registry(d).resolve('users', { signal: signal() })).rejects.toThrow(/answered 410 Expired: too old resource version: 5 \(900\)/);
  });

  it('reads users.payments in namespace payments, and refuses a name that is not a Service', async () => {
    const d = await t.double();
    d.setEndpoints('users.payments', [{ ip: '127.0.0.7' }]);
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    expect(addresses(await r.resolve('users.payments', { signal: signal() }))).toEqual(['127.0.0.7:8080']);
    expect(d.requests.at(-1)!.path).toBe('/apis/discovery.k8s.io/v1/namespaces/payments/endpointslices');
    expect(addresses(await r.resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']);
    await expect(r.resolve('users.pay_ments', { signal: signal() })).rejects.toThrow(/not a Kubernetes namespace name/);
    expect(d.requests).toHaveLength(2);
  });

  it('chooses the port by name or target port number, per service too; several and no choice, or one no slice carries, is a DiscoveryError', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }], { extraPorts: [{ name: 'metrics', port: 9090 }] });
    await expect(t.registry(d).resolve('users', { signal: signal() })).rejects.toThrow(/several ports \(http, metrics\): choose one with kubernetesRegistry\.port/);
    expect(addresses(await t.registry(d, { port: 'metrics' }).resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:9090']);
    expect(addresses(await t.registry(d, { port: 8080 }).resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']);
    expect(addresses(await t.registry(d, { port: 'metrics', ports: { users: 'http' } }).resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']);
    const typo = await t.registry(d, { port: 'grpc' }).resolve('users', { signal: signal() }).catch((e: unknown) => e);
    expect(typo).toBeInstanceOf(DiscoveryError);
    expect((typo as Error).message).toMatch(/carry no TCP port named 'grpc'; the ports they carry: http \(8080\), metrics \(9090\)/);
    // And a watch reports it, rather than publishing an empty list.
    const w = record(t.registry(d, { port: 80 }));
    await waitFor(() => expect(w.errors).toHaveLength(1));
    expect(w.errors[0]).toBeInstanceOf(DiscoveryError);
    expect(w.errors[0]!.message).toMatch(/no TCP endpoint port 80 \(a number is the pods' targetPort/);
    expect(w.updates).toEqual([]);
  });

  it('reads one address family of a dual-stack Service: IPv4 by default, IPv6 when asked', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1', uid: 'a1' }, { ip: '::1', uid: 'a1' }, { ip: '127.0.0.2', uid: 'b2' }, { ip: '0:0:0:0:0:0:0:2', uid: 'b2' }]);
    expect(addresses(await t.registry(d).resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080', '127.0.0.2:8080']);
    expect(addresses(await t.registry(d, { addressType: 'IPv6' }).resolve('users', { signal: signal() }))).toEqual(['::1:8080', '::2:8080']);
  });
});
