// kubernetesRegistry against the Kubernetes API double when things go wrong: error answers (their Status shown,
// tokens redacted), stalled and broken streams, garbage and oversized lines, no answer, hostile slices.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { KubernetesError } from '../../src/discovery/kubernetes/http.js';
import { kubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import { DiscoveryError } from '../../src/errors.js';
import { waitFor } from '../helpers/kube-double.js';
import { addresses, listRequests, record, signal, TOKEN, useKubeTestbed, watchRequests } from '../helpers/kube-double-registry.js';

const t = useKubeTestbed();

describe('kubernetesRegistry: failures', () => {
  it('401 with a fixed token: a DiscoveryError quoting the Status, with the token the server echoed redacted', async () => {
    const d = await t.double({ echoTokenOn401: true });
    const r = t.registry(d, { token: 'wrong-token-7f3a' });
    const error = await r.resolve('users', { signal: signal() }).catch((e: unknown) => e as DiscoveryError);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as Error).message).toMatch(/answered 401 Unauthorized: Unauthorized: invalid bearer token "\[redacted\]"/);
    expect((error as Error).message).not.toContain('7f3a');
    expect(d.requests).toHaveLength(1); // a fixed token is not read again: no retry
    // A token file: the token read, and the one read again after the 401, are both redacted.
    const tokenFile = t.file('stale-token', 'stale-token-9c1e');
    const fromFile = (await t.registry(d, { token: undefined, tokenFile }).resolve('users', { signal: signal() }).catch((e: unknown) => e)) as Error;
    expect(fromFile.message).toMatch(/invalid bearer token "\[redacted\]"/);
    expect(fromFile.message).not.toContain('9c1e');
  });

  it('500: the Status message, redacted; a failing watch reports and recovers, the last list serving meanwhile', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    d.respondWith(500, `Internal error occurred: token ${TOKEN} expired`);
    const error = (await r.resolve('users', { signal: signal() }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/answered 500 InternalError: Internal error occurred: token \[redacted\] expired/);
    expect(error.message).not.toContain(TOKEN);
    d.respondNormally();

    const w = record(r);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8080']));
    d.respondWith(500, 'Internal error occurred: etcdserver: request timed out');
    d.dropWatches();
    await waitFor(() => expect(w.errors.length).toBeGreaterThanOrEqual(1));
    expect(w.errors[0]).toBeInstanceOf(DiscoveryError);
    expect(w.errors[0]!.message).toMatch(/answered 500 InternalError: Internal error occurred: etcdserver: request timed out/);
    expect(addresses(await r.resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']); // the last good list
    d.respondNormally();
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']));
    expect(w.updates.every((u) => u.length > 0)).toBe(true);
  });

  it('reopens a watch silent for idleTimeoutMs without reporting it, and sees the change once the server answers again', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d, { idleTimeoutMs: 300 });
    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    d.stall(); // the open watch, and new ones, send nothing: a quiet Service without bookmarks looks the same
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(watchRequests(d).length).toBeGreaterThanOrEqual(3), 3_000); // dropped, watched again, twice
    expect(w.last()).toEqual(['127.0.0.1:8080']); // nothing arrived through the stall
    d.unstall();
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']), 3_000);
    expect(w.errors).toEqual([]); // each reconnect worked: nothing to report
    expect(listRequests(d)).toHaveLength(1); // resumed from the resourceVersion each time
  });

  it('treats a garbage line as a broken stream: reports it, relists, keeps going', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d);
    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    expect(d.writeGarbage(`{"type":"ADDED","object":"${TOKEN}"`)).toBe(1);
    await waitFor(() => expect(w.errors).toHaveLength(1));
    expect(w.errors[0]!.message).toMatch(/sent a line that is not a watch event: a watch line is not JSON \(\d+ bytes\)/);
    expect(w.errors[0]!.message).not.toContain(TOKEN);
    await waitFor(() => expect(listRequests(d)).toHaveLength(2)); // relisted
    await waitFor(() => expect([watchRequests(d).length, d.openWatches().length]).toEqual([2, 1])); // and watching again
    expect(d.writeGarbage('{"type":"ADDED","object":{"metadata":{}}}')).toBe(1); // JSON, but no WatchEvent of a slice
    await waitFor(() => expect(w.errors).toHaveLength(2));
    d.setEndpoints('users', [{ ip: '127.0.0.3' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.3:8080']));
  });

  it('refuses a watch line longer than maxBodyBytes, even one that arrives whole in one chunk', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d, { maxBodyBytes: 1_024 });
    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    const slice = { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', ...d.slices('default', 'users')[0]!, metadata: { ...d.slices('default', 'users')[0]!.metadata, annotations: { pad: 'x'.repeat(4_000) } } };
    expect(d.writeGarbage(JSON.stringify({ type: 'MODIFIED', object: slice }))).toBe(1); // a valid event, 4 KB, one write
    await waitFor(() => expect(w.errors).toHaveLength(1));
    expect((w.errors[0]!.cause as KubernetesError).kind).toBe('too-large');
    expect(w.errors[0]!.message).toMatch(/sent a watch event line longer than maxBodyBytes \(1024 bytes\)/);
    await waitFor(() => expect(listRequests(d)).toHaveLength(2)); // relisted: the stream cannot be trusted
  });

  it('a list that gets no answer fails after timeoutMs', async () => {
    const held = new Set<Socket>();
    const silent = createServer((socket) => void held.add(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const r = t.own(kubernetesRegistry({ apiUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, token: TOKEN, env: {}, namespace: 'default', timeoutMs: 200 }));
      const started = performance.now();
      await expect(r.resolve('users', { signal: signal() })).rejects.toThrow(/got no answer within 200 ms/);
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('leaves hostile data out and serves the rest: bad addresses, port 0, port 70000, FQDN, UDP, non-boolean conditions', async () => {
    const d = await t.double();
    const slice = (name: string, addressType: string, ports: unknown, ...ips: unknown[]) => ({
      metadata: { name, labels: { 'kubernetes.io/service-name': 'users' } },
      addressType,
      endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
      ports,
    });
    const port = (p: unknown, protocol = 'TCP') => [{ name: 'http', protocol, port: p }];
    d.putSlice('default', slice('good', 'IPv4', port(8080), '127.0.0.1', '300.1.1.1', '127.0.0.1/32', 'localhost', '', null, '127.0.0.01'));
    d.putSlice('default', slice('zero', 'IPv4', port(0), '127.0.0.2'));
    d.putSlice('default', slice('big', 'IPv4', port(70000), '127.0.0.3'));
    d.putSlice('default', slice('fqdn', 'FQDN', port(8080), 'example.com'));
    d.putSlice('default', slice('udp', 'IPv4', port(8080, 'UDP'), '127.0.0.4'));
    d.putSlice('default', slice('v6', 'IPv6', port(8080), '::1', '127.0.0.5', 'fe80::1%lo'));
    d.putSlice('default', { metadata: { name: 'junk', labels: { 'kubernetes.io/service-name': 'users' } }, addressType: 7, endpoints: 'x', ports: { a: 1 } });
    d.putSlice('default', { ...slice('strings', 'IPv4', port(8080)), endpoints: [{ addresses: ['127.0.0.7'], conditions: { ready: 'false' } }] });
    const r = t.registry(d);
    expect(addresses(await r.resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']); // IPv4: a family per Service
    expect(addresses(await t.registry(d, { addressType: 'IPv6' }).resolve('users', { signal: signal() }))).toEqual(['::1:8080']);
    const w = record(r);
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    d.putSlice('default', slice('good', 'IPv4', port(8080), '127.0.0.1', '127.0.0.6', '1.2.3'));
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8080', '127.0.0.6:8080']));
    expect(w.errors).toEqual([]);
  });
});
