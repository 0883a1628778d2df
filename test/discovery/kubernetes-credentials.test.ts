// kubernetesRegistry's credentials and connections, against the Kubernetes API double: the token file re-read
// on 401 and as it ages, https with the CA file, the in-cluster defaults, and close().
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { waitFor } from '../helpers/kube-double.js';
import { addresses, record, signal, TOKEN, useKubeTestbed } from '../helpers/kube-double-registry.js';
import { manualClock } from './fakes.js';

const t = useKubeTestbed();

describe('kubernetesRegistry: credentials and TLS', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki.close());

  it('re-reads a rotated token file on 401 and keeps working, without an error', async () => {
    const d = await t.double();
    const tokenFile = t.file('token', `${TOKEN}\n`);
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const r = t.registry(d, { token: undefined, tokenFile });
    const w = record(r);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.1:8080']));
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    // The kubelet rotates the projected token; the API server accepts only the new one.
    const rotated = 'eyJhbGciOiJSUzI1NiJ9.kube-double-token-2';
    writeFileSync(tokenFile, rotated);
    d.rotateToken(rotated);
    d.dropWatches(); // the next request, within the minute the old token is cached, gets a 401
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']), 5_000);
    const after = d.requests.slice(-2);
    expect(after.map((q) => [q.status, q.token])).toEqual([[401, TOKEN], [200, rotated]]);
    expect(w.errors).toEqual([]);
  });

  it('re-reads the token file every tokenRefreshMs (on its clock), before any 401', async () => {
    const d = await t.double({ token: null }); // accepts any token: no 401 ever prompts a re-read
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const tokenFile = t.file('aging-token', 'token-one');
    const clock = manualClock(0);
    const r = t.registry(d, { token: undefined, tokenFile, clock });
    const list = () => r.resolve('users', { signal: signal() });
    await list();
    writeFileSync(tokenFile, 'token-two');
    clock.advance(59_999);
    await list();
    clock.advance(1); // the default tokenRefreshMs, 60 s (client-go's period)
    await list();
    await list();
    const short = t.registry(d, { token: undefined, tokenFile, clock, tokenRefreshMs: 5_000 });
    await short.resolve('users', { signal: signal() });
    writeFileSync(tokenFile, 'token-three');
    clock.advance(5_000);
    await short.resolve('users', { signal: signal() });
    expect(d.requests.map((q) => [q.status, q.token])).toEqual([
      [200, 'token-one'],
      [200, 'token-one'],
      [200, 'token-two'],
      [200, 'token-two'],
      [200, 'token-two'],
      [200, 'token-three'],
    ]);
  });

  it('an unreadable token file fails discovery naming the file, not its content', async () => {
    const d = await t.double();
    const r = t.registry(d, { token: undefined, tokenFile: join(t.dir(), 'no-such-token') });
    await expect(r.resolve('users', { signal: signal() })).rejects.toThrow(/cannot read .*no-such-token \(ENOENT\)/);
    const bad = t.file('bad-token', 'abc def\n');
    await expect(t.registry(d, { token: undefined, tokenFile: bad }).resolve('users', { signal: signal() })).rejects.toThrow(/holds characters an HTTP header cannot carry$/);
    expect(d.requests).toHaveLength(0);
  });

  it('speaks https with the CA file, checks the server name, and refuses an unknown CA', async () => {
    const d = await t.double({ tls: pki.server(['kubernetes.default.svc']) });
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    const caFile = t.file('ca.crt', pki.ca);
    const r = t.registry(d, { caFile, tlsServerName: 'kubernetes.default.svc' });
    expect(addresses(await r.resolve('users', { signal: signal() }))).toEqual(['127.0.0.1:8080']);
    const w = record(r);
    d.setEndpoints('users', [{ ip: '127.0.0.2' }]);
    await waitFor(() => expect(w.last()).toEqual(['127.0.0.2:8080']));

    await expect(t.registry(d, { tlsServerName: 'kubernetes.default.svc', caFile: join(t.dir(), 'none.crt') }).resolve('users', { signal: signal() })).rejects.toThrow(/cannot read .*none\.crt/);
    const other = makePki();
    try {
      const wrongCa = t.file('other-ca.crt', other.ca);
      await expect(t.registry(d, { caFile: wrongCa, tlsServerName: 'kubernetes.default.svc' }).resolve('users', { signal: signal() })).rejects.toThrow(/certificate/i);
    } finally {
      other.close();
    }
    await expect(t.registry(d, { caFile }).resolve('users', { signal: signal() })).rejects.toThrow(/does not match certificate|altnames/i);
  });

  it('runs in-cluster with no connection option: env, token, CA and namespace files', async () => {
    const d = await t.double({ tls: pki.server(['kubernetes.default.svc']) });
    d.setEndpoints('users.shop', [{ ip: '127.0.0.1', zone: 'z1' }]);
    const r = t.own(
      kubernetesRegistry({
        env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(d.port) },
        tokenFile: t.file('sa-token', TOKEN),
        caFile: t.file('sa-ca.crt', pki.ca),
        namespaceFile: t.file('sa-namespace', 'shop'),
        tlsServerName: 'kubernetes.default.svc',
      }),
    );
    const list = await r.resolve('users', { signal: signal() });
    expect(addresses(list)).toEqual(['127.0.0.1:8080']);
    expect(list[0]!.zone).toBe('z1');
    expect(d.requests[0]).toMatchObject({ path: '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices', token: TOKEN });
  });

  it('close() leaves held watches to their holder (a mesh sharing the registry); once dropped, no watch or connection is left', async () => {
    const d = await t.double();
    d.setEndpoints('users', [{ ip: '127.0.0.1' }]);
    d.setEndpoints('billing', [{ ip: '127.0.0.2' }]);
    const r = t.registry(d);
    await r.resolve('orders', { signal: signal() }); // a keep-alive connection, idle now
    const users = record(r, 'users');
    const billing = record(r, 'billing');
    await waitFor(() => expect(d.openWatches()).toHaveLength(2));
    r.close();
    billing.stop();
    d.setEndpoints('users', [{ ip: '127.0.0.3' }]);
    await waitFor(() => expect(users.last()).toEqual(['127.0.0.3:8080'])); // still watching for its holder
    await waitFor(() => expect(d.openWatches()).toHaveLength(1));
    users.stop();
    await waitFor(() => expect([d.openWatches().length, d.connections()]).toEqual([0, 0]));
    expect(r.watchState('users')).toBeUndefined();
    // Still usable by a mesh that shares it, and shut again once unused.
    expect(addresses(await r.resolve('billing', { signal: signal() }))).toEqual(['127.0.0.2:8080']);
    await waitFor(() => expect(d.connections()).toBe(0));
  });
});
