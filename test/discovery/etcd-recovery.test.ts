// etcdRegistry against the real binary, recovering from what a long-running watch meets: its auth token
// expired while etcd was out of reach, and etcd restored from an older data dir. Plus: etcd accepts the
// require-leader header the watch sends. Skipped when etcd is missing (the REQUIRE_ETCD check is etcd-watch's).
import { cpSync, rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { etcdRegistry, type EtcdRegistry, type EtcdRegistryOptions } from '../../src/discovery/etcd/index.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { waitUntil } from '../helpers/consul-double.js';
import { etcdCall, startEtcd, startEtcdProxy, type EtcdProxy, type EtcdServer } from '../helpers/etcd-server.js';
import { describeWithEtcd } from '../helpers/etcd-suite.js';

const ids = (list: readonly Endpoint[] | undefined): string[] => (list ?? []).map((e) => e.id).sort();
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function watched(options: EtcdRegistryOptions) {
  const r: EtcdRegistry = etcdRegistry({ backoff: { initialMs: 20, maxMs: 200 }, timeoutMs: 1_000, ...options });
  const updates: (readonly Endpoint[])[] = [];
  const errors: Error[] = [];
  cleanup.push(() => r.close());
  cleanup.push(r.watch('users', (l) => updates.push(l), (e) => errors.push(e)));
  return { r, updates, errors };
}

describeWithEtcd('etcdRegistry: a watch whose token expired while etcd was out of reach', () => {
  let etcd: EtcdServer;
  let proxy: EtcdProxy;
  /** One call as root, with a token of its own (tokens live 1 s here). */
  const admin = async (path: string, body: unknown): Promise<unknown> => {
    const { token } = (await etcdCall(etcd.url, '/v3/auth/authenticate', { name: 'root', password: 'pw' })) as { token: string };
    return etcdCall(etcd.url, path, body, { authorization: token });
  };
  const put = (key: string, port: number) => admin('/v3/kv/put', { key: b64(key), value: b64(JSON.stringify({ host: '127.0.0.1', port })) });

  beforeAll(async () => {
    etcd = await startEtcd({ args: ['--auth-token-ttl=1'] });
    proxy = await startEtcdProxy(etcd.url);
    await etcd.call('/v3/auth/user/add', { name: 'root', password: 'pw' });
    await etcd.call('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await etcd.call('/v3/auth/enable', {});
  });
  afterAll(async () => {
    await proxy?.close();
    await etcd?.close();
  });

  it('drops the token etcd cancels the watch for, authenticates again, and sees the keys put meanwhile', async () => {
    await put('/services/users/a', 8081);
    const w = watched({ endpoints: [proxy.url], username: 'root', password: 'pw' });
    await waitUntil(() => expect(ids(w.updates.at(-1))).toEqual(['a']), 5_000);
    proxy.fail();
    await waitUntil(() => expect(w.r.watchState('users')?.kind).toBe('backing-off'), 5_000);
    // Every token etcd handed out is invalid now (what --auth-token-ttl=1 does to an unused one, without the wait).
    await admin('/v3/auth/disable', {});
    await etcd.call('/v3/auth/enable', {});
    await put('/services/users/b', 8082);
    proxy.recover();
    await waitUntil(() => expect(ids(w.updates.at(-1))).toEqual(['a', 'b']), 5_000);
    await waitUntil(() => expect(w.r.watchState('users')?.kind).toBe('watching'), 5_000);
    const errors = w.errors.length;
    await put('/services/users/c', 8083);
    await waitUntil(() => expect(ids(w.updates.at(-1))).toEqual(['a', 'b', 'c']), 5_000);
    expect(w.errors.length).toBe(errors);
    expect(w.errors.map((e) => e.message).join('\n')).not.toMatch(/invalid auth token/);
  });
});

describeWithEtcd('etcdRegistry: etcd restored from an older data dir', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it('notices the revision went back (reported once), relists, and watches the restored store', async () => {
    await etcd.put('/services/users/a', { host: '127.0.0.1', port: 8081 });
    await etcd.stop();
    const backup = `${etcd.dataDir}-backup`;
    cpSync(etcd.dataDir, backup, { recursive: true });
    cleanup.push(() => rmSync(backup, { recursive: true, force: true }));
    await etcd.start();
    const w = watched({ endpoints: [etcd.url] });
    await etcd.put('/services/users/b', { host: '127.0.0.1', port: 8082 });
    await etcd.put('/services/users/c', { host: '127.0.0.1', port: 8083 });
    const high = await etcd.revision();
    await waitUntil(() => expect(w.r.watchState('users')).toEqual({ kind: 'watching', revision: high }), 5_000);
    await etcd.stop();
    rmSync(etcd.dataDir, { recursive: true, force: true });
    cpSync(backup, etcd.dataDir, { recursive: true });
    await etcd.start();
    expect(await etcd.revision()).toBeLessThan(high);
    await waitUntil(() => expect(ids(w.updates.at(-1))).toEqual(['a']), 5_000);
    expect(w.errors.filter((e) => /older state/.test(e.message))).toHaveLength(1);
    await etcd.put('/services/users/d', { host: '127.0.0.1', port: 8084 });
    await waitUntil(() => expect(ids(w.updates.at(-1))).toEqual(['a', 'd']), 5_000);
  });

  it('accepts the watch header Grpc-Metadata-Hasleader: true (a single member always has a leader)', async () => {
    const controller = new AbortController();
    const response = await fetch(`${etcd.url}/v3/watch`, {
      method: 'POST',
      headers: { 'Grpc-Metadata-Hasleader': 'true' },
      body: JSON.stringify({ create_request: { key: b64('/services/'), range_end: b64('/services0') } }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    const { value } = await reader.read();
    controller.abort();
    expect(response.status).toBe(200);
    expect(JSON.parse(new TextDecoder().decode(value).split('\n')[0]!)).toMatchObject({ result: { created: true } });
  });
});
