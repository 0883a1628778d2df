// Option checks of etcdRegistry and registerEtcd (once, at construction, naming the option), and the parsers of
// etcd's gateway JSON and of the registry's keys, with the shapes recorded from etcd 3.4.23.
import { describe, expect, it } from 'vitest';
import { etcdRegistry, registerEtcd, type EtcdRegistryOptions, type RegisterEtcdOptions } from '../../src/discovery/etcd/index.js';
import { backoffDelay } from '../../src/discovery/etcd/options.js';
import { encodeValue, parseRecord, serviceRange } from '../../src/discovery/etcd/records.js';
import { b64, int64, parseGrant, parseKeepAlive, parseRange, parseWatchLine, prefixEnd, unb64, WireError } from '../../src/discovery/etcd/wire.js';

const bad = (options: unknown): (() => unknown) => () => etcdRegistry(options as EtcdRegistryOptions);

describe('etcdRegistry options', () => {
  it('takes no options (127.0.0.1:2379, /services/) and refuses unknown ones by name', () => {
    expect(etcdRegistry().watch).toBeTypeOf('function');
    expect(bad({ url: 'http://x' })).toThrow(/^etcdRegistry\.url is not a known option \(known: endpoints, prefix/);
    expect(bad(null)).toThrow('etcdRegistry(options) must be an object');
    expect(bad([])).toThrow('etcdRegistry(options) must be an object');
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['endpoints empty', { endpoints: [] }, /etcdRegistry\.endpoints must be a non-empty array/],
    ['endpoints a string', { endpoints: 'http://127.0.0.1:2379' }, /etcdRegistry\.endpoints must be a non-empty array/],
    ['endpoint without a scheme', { endpoints: ['127.0.0.1:2379'] }, /etcdRegistry\.endpoints\[0\] is not a valid URL \(expected http:\/\/host:port\)/],
    ['endpoint host:port read as a scheme', { endpoints: ['localhost:2379'] }, /etcdRegistry\.endpoints\[0\] must use http:\/\/ or https:\/\//],
    ['endpoint garbage', { endpoints: ['http://'] }, /etcdRegistry\.endpoints\[0\] is not a valid URL/],
    ['endpoint unix', { endpoints: ['http://127.0.0.1:2379', 'unix:///run/etcd.sock'] }, /etcdRegistry\.endpoints\[1\] must use http/],
    ['endpoint credentials', { endpoints: ['http://root:pw@127.0.0.1:2379'] }, /endpoints\[0\] must not contain credentials/],
    ['endpoint query', { endpoints: ['http://127.0.0.1:2379/?x=1'] }, /must not have a query/],
    ['prefix without slash', { prefix: '/services' }, /etcdRegistry\.prefix must be a string ending with '\/'/],
    ['prefix empty', { prefix: '' }, /etcdRegistry\.prefix/],
    ['prefix control', { prefix: '/a\n/' }, /etcdRegistry\.prefix/],
    ['fetch', { fetch: 'fetch' }, /etcdRegistry\.fetch must be a function/],
    ['username alone', { username: 'root' }, /etcdRegistry\.username and etcdRegistry\.password go together/],
    ['username empty', { username: '', password: 'x' }, /etcdRegistry\.username must be a non-empty string/],
    ['password number', { username: 'root', password: 1234 }, /etcdRegistry\.password must be a string \(its value is not shown\)/],
    ['timeoutMs 0', { timeoutMs: 0 }, /etcdRegistry\.timeoutMs must be a number of ms from 1 to 2147483647/],
    ['timeoutMs huge', { timeoutMs: 2 ** 31 }, /etcdRegistry\.timeoutMs/],
    ['maxBodyBytes', { maxBodyBytes: 1.5 }, /etcdRegistry\.maxBodyBytes must be an integer/],
    ['backoff type', { backoff: 5 }, /etcdRegistry\.backoff must be an object/],
    ['backoff key', { backoff: { initial: 5 } }, /etcdRegistry\.backoff\.initial is not a known option/],
    ['backoff.initialMs', { backoff: { initialMs: -1 } }, /etcdRegistry\.backoff\.initialMs must be/],
    ['backoff.maxMs below initialMs', { backoff: { initialMs: 500, maxMs: 100 } }, /etcdRegistry\.backoff\.maxMs must be a number of ms from 500/],
    ['idleTimeoutMs', { idleTimeoutMs: 5 }, /etcdRegistry\.idleTimeoutMs must be a number of ms from 10/],
    ['onInvalidKey', { onInvalidKey: true }, /etcdRegistry\.onInvalidKey must be a function/],
    ['random', { random: 0.5 }, /etcdRegistry\.random must be a function/],
  ])('%s', (_name, options, message) => {
    expect(bad(options)).toThrow(TypeError);
    expect(bad(options)).toThrow(message);
  });

  it('never shows the password in an error', () => {
    try {
      etcdRegistry({ username: 'root', password: 'hunter2', timeoutMs: -1 });
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
    }
    expect.assertions(1);
  });

  it('backoff: doubling, ±20 %, capped; a broken random source does not make NaN delays', () => {
    const b = { initialMs: 1_000, maxMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((f) => backoffDelay(b, f, () => 0.5))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect(backoffDelay(b, 1, () => 0)).toBe(800);
    expect(backoffDelay(b, 1, () => 0.999_999)).toBeCloseTo(1_200, 0);
    expect(backoffDelay(b, 1, () => Number.NaN)).toBe(1_000);
    expect(backoffDelay(b, 1, () => 7)).toBe(1_000);
    expect(backoffDelay(b, 10_000, () => 0.5)).toBe(30_000);
  });
});

describe('registerEtcd options', () => {
  const service = { name: 'users', address: '127.0.0.1', port: 8081 };
  const reject = (options: unknown) => expect(registerEtcd(options as RegisterEtcdOptions)).rejects;

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['unknown key', { service, ttl: 5 }, /^registerEtcd\.ttl is not a known option/],
    ['etcd unknown key', { service, etcd: { url: 'x' } }, /^registerEtcd\.etcd\.url is not a known option/],
    ['etcd prefix', { service, etcd: { prefix: 'x' } }, /registerEtcd\.etcd\.prefix must be a string ending with '\/'/],
    ['etcd endpoints', { service, etcd: { endpoints: ['ftp://x'] } }, /registerEtcd\.etcd\.endpoints\[0\] must use http/],
    ['no service', {}, /registerEtcd\.service must be an object/],
    ['service unknown key', { service: { ...service, weights: {} } }, /registerEtcd\.service\.weights is not a known option/],
    ['service name', { service: { ...service, name: 'a/b' } }, /registerEtcd\.service\.name is not a valid service name/],
    ['address', { service: { ...service, address: '0.0.0.0:80' } }, /registerEtcd\.service\.address must be a host name or IP address/],
    ['address 127.1', { service: { ...service, address: '127.1' } }, /registerEtcd\.service\.address/],
    ['port', { service: { ...service, port: 70000 } }, /registerEtcd\.service\.port must be an integer from 1 to 65535/],
    ['id', { service: { ...service, id: 'a\nb' } }, /registerEtcd\.service\.id must be a non-empty string/],
    ['weight', { service: { ...service, weight: 0 } }, /registerEtcd\.service\.weight must be a finite number > 0/],
    ['zone', { service: { ...service, zone: 1 } }, /registerEtcd\.service\.zone must be a string/],
    ['tags', { service: { ...service, tags: 'v1' } }, /registerEtcd\.service\.tags must be an array of strings/],
    ['meta', { service: { ...service, meta: { a: 1 } } }, /registerEtcd\.service\.meta must map strings to strings/],
    ['ttlMs below 1 s', { service, ttlMs: 999 }, /registerEtcd\.ttlMs must be a number of ms from 1000/],
    ['keepAliveMs past the TTL', { service, ttlMs: 3_000, keepAliveMs: 3_000 }, /registerEtcd\.keepAliveMs must be less than ttlMs/],
    ['onError', { service, onError: 'log' }, /registerEtcd\.onError must be a function/],
  ])('%s', async (_name, options, message) => {
    await reject(options).toThrow(TypeError);
    await reject(options).toThrow(message);
  });

  it('checks before it sends anything', async () => {
    let calls = 0;
    const fetch = async (): Promise<Response> => {
      calls++;
      return new Response('{}');
    };
    await expect(registerEtcd({ etcd: { fetch }, service: { ...service, port: 0 } })).rejects.toThrow(TypeError);
    expect(calls).toBe(0);
  });
});

describe('the gateway JSON', () => {
  it('prefixEnd: the last byte plus one, 0xff bytes dropped, \\0 for all-0xff (clientv3 GetPrefixRangeEnd)', () => {
    expect(prefixEnd('/services/users/').toString()).toBe('/services/users0');
    expect(prefixEnd('a').toString()).toBe('b');
    expect([...prefixEnd('é')]).toEqual([0xc3, 0xaa]); // UTF-8 c3 a9 → c3 aa
    expect(prefixEnd(Uint8Array.from([0x61, 0xff])).toString()).toBe('b'); // trailing 0xff dropped, then a+1
    expect([...prefixEnd(Uint8Array.from([0xff, 0xff]))]).toEqual([0]); // no end: every key from the prefix on
    expect(serviceRange('/s/', 'users')).toEqual({ keyPrefix: '/s/users/', key: b64('/s/users/'), rangeEnd: b64('/s/users0') });
  });

  it('base64 and int64, leniently where proto3 leaves defaults out, strictly elsewhere', () => {
    expect(unb64(b64('héllo'), 'x').toString()).toBe('héllo');
    expect(unb64(undefined, 'x')).toHaveLength(0);
    expect(() => unb64('not base64!', 'kv.value')).toThrow(new WireError('kv.value is not base64'));
    expect(() => unb64('abc', 'v')).toThrow(WireError);
    expect(int64('7587883417208046000', 'ID')).toBe(7587883417208046000n); // past 2^53: exact
    expect(int64(undefined, 'TTL')).toBe(0n);
    expect(int64(5, 'TTL')).toBe(5n);
    expect(() => int64('5.5', 'TTL')).toThrow(WireError);
    expect(() => int64('1'.repeat(25), 'TTL')).toThrow(WireError);
  });

  it('a range answer, with kvs and count left out when empty', () => {
    const real = { header: { cluster_id: '15118495548433857066', member_id: '13668033151171901709', revision: '2', raft_term: '2' }, kvs: [{ key: 'Zm9v', create_revision: '2', mod_revision: '2', version: '1', value: 'YmFy' }], count: '1' };
    const answer = parseRange(real);
    expect(answer.revision).toBe(2n);
    expect(answer.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.modRevision])).toEqual([['foo', 'bar', 2n]]);
    expect(parseRange({ header: { revision: '9' } })).toEqual({ revision: 9n, kvs: [], more: false });
    expect(() => parseRange([])).toThrow(WireError);
    expect(() => parseRange({ kvs: [{ key: 5 }] })).toThrow(/kvs\[0\]\.key is not base64/);
  });

  it('watch lines as etcd 3.4 writes them', () => {
    const h = '"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"}';
    expect(parseWatchLine(`{"result":{${h},"created":true}}`)).toEqual({ kind: 'created', revision: 3n });
    const put = parseWatchLine(`{"result":{${h},"events":[{"kv":{"key":"L3MvYS8x","create_revision":"3","mod_revision":"3","version":"1","value":"eA==","lease":"4111120396371215372"}}]}}`);
    expect(put).toMatchObject({ kind: 'events', revision: 3n, events: [{ type: 'PUT', kv: { modRevision: 3n } }] });
    const del = parseWatchLine(`{"result":{${h},"events":[{"type":"DELETE","kv":{"key":"L3MvYS8x","mod_revision":"4"}}]}}`);
    expect(del).toMatchObject({ kind: 'events', events: [{ type: 'DELETE', kv: { modRevision: 4n } }] });
    expect((del as unknown as { events: { kv: { value: Buffer } }[] }).events[0]!.kv.value).toHaveLength(0);
    expect(parseWatchLine('{"result":{"header":{"cluster_id":"1","member_id":"2","raft_term":"2"},"canceled":true,"compact_revision":"5"}}')).toEqual({ kind: 'compacted', compactRevision: 5n });
    expect(parseWatchLine(`{"result":{${h},"canceled":true,"cancel_reason":"etcdserver: permission denied"}}`)).toEqual({ kind: 'canceled', reason: 'etcdserver: permission denied' });
    expect(parseWatchLine(`{"result":{${h}}}`)).toEqual({ kind: 'progress', revision: 3n });
    expect(parseWatchLine('{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}')).toEqual({ kind: 'error', message: 'transport is closing' });
    expect(() => parseWatchLine('{"result": 5}')).toThrow(/no result object/);
    expect(() => parseWatchLine('nope')).toThrow(/not JSON \(4 bytes\)/);
    expect(() => parseWatchLine(`{"result":{${h},"events":[{"type":"EXPIRE","kv":{}}]}}`)).toThrow(/not PUT or DELETE/);
  });

  it('lease answers: grant, keepalive (TTL left out: the lease is gone)', () => {
    expect(parseGrant({ header: {}, ID: '4111120396371215366', TTL: '5' })).toEqual({ id: '4111120396371215366', ttlSeconds: 5 });
    expect(() => parseGrant({ header: {}, ID: '1', TTL: '5', error: 'lessor: too many' })).toThrow(/refused the lease/);
    expect(() => parseGrant({ header: {} })).toThrow(/no ID or TTL/);
    expect(parseKeepAlive({ result: { header: {}, ID: '12', TTL: '5' } })).toBe(5);
    expect(parseKeepAlive({ result: { header: {}, ID: '12' } })).toBe(0);
    expect(parseKeepAlive('{"result":{"ID":"12","TTL":"7"}}\n')).toBe(7);
    expect(() => parseKeepAlive({ error: { message: 'etcdserver: no leader' } })).toThrow(/no leader/);
  });
});

describe('registry keys', () => {
  const range = serviceRange('/s/', 'users');
  const kv = (key: string | Buffer, value: string) => ({ key: Buffer.isBuffer(key) ? key : Buffer.from(key), value: Buffer.from(value), modRevision: 1n });

  it('reads an endpoint, its id the key’s last part, and writes what it reads', () => {
    const value = encodeValue({ host: '10.0.0.1', port: 80, weight: 2, zone: 'a', tags: ['x'], meta: { v: '1' } });
    expect(parseRecord(range, 'users', kv('/s/users/i-1', value))).toEqual({
      endpoint: { id: 'i-1', host: '10.0.0.1', port: 80, weight: 2, zone: 'a', tags: ['x'], meta: { v: '1' } },
    });
    expect(parseRecord(range, 'users', kv('/s/users/a/b', '{"host":"::1","port":1}'))).toMatchObject({ endpoint: { id: 'a/b', host: '::1' } });
    expect(parseRecord(range, 'users', kv('/s/users/x', '{"host":"[::1]","port":1}'))).toMatchObject({ endpoint: { host: '::1' } });
  });

  it.each<[string, string | Buffer, string, RegExp]>([
    ['outside the range', '/s/other/x', '{"host":"127.0.0.1","port":1}', /not under \/s\/users\//],
    ['no id', '/s/users/', '{"host":"127.0.0.1","port":1}', /no id/],
    ['control character id', '/s/users/a\tb', '{"host":"127.0.0.1","port":1}', /control characters/],
    ['not UTF-8', Buffer.concat([Buffer.from('/s/users/'), Buffer.from([0xff])]), '{"host":"127.0.0.1","port":1}', /not UTF-8/],
    ['not JSON', '/s/users/x', 'host=1', /not JSON/],
    ['JSON null', '/s/users/x', 'null', /not a JSON object/],
    ['no host', '/s/users/x', '{"port":1}', /host/],
    ['host with a port', '/s/users/x', '{"host":"127.0.0.1:80","port":1}', /host/],
    ['short IPv4', '/s/users/x', '{"host":"127.1","port":1}', /ends in a number/],
    ['zone id', '/s/users/x', '{"host":"fe80::1%eth0","port":1}', /zone id/],
    ['port 0', '/s/users/x', '{"host":"127.0.0.1","port":0}', /port/],
    ['port 65536', '/s/users/x', '{"host":"127.0.0.1","port":65536}', /port/],
    ['port 1.5', '/s/users/x', '{"host":"127.0.0.1","port":1.5}', /port/],
    ['weight Infinity-ish', '/s/users/x', '{"host":"127.0.0.1","port":1,"weight":1e999}', /weight/],
    ['weight string', '/s/users/x', '{"host":"127.0.0.1","port":1,"weight":"2"}', /weight/],
    ['zone number', '/s/users/x', '{"host":"127.0.0.1","port":1,"zone":1}', /zone/],
    ['tags object', '/s/users/x', '{"host":"127.0.0.1","port":1,"tags":{}}', /tags/],
    ['meta array', '/s/users/x', '{"host":"127.0.0.1","port":1,"meta":[]}', /meta/],
  ])('refuses %s', (_name, key, value, problem) => {
    const parsed = parseRecord(range, 'users', kv(key, value));
    expect(parsed).toHaveProperty('problem');
    expect((parsed as { problem: string }).problem).toMatch(problem);
  });

  it('weight 0 is a drained instance: left out, without a problem', () => {
    expect(parseRecord(range, 'users', kv('/s/users/x', '{"host":"127.0.0.1","port":1,"weight":0}'))).toEqual({ drained: true });
  });

  it('a value over 64 KiB is refused before parsing', () => {
    const parsed = parseRecord(range, 'users', kv('/s/users/x', JSON.stringify({ host: '127.0.0.1', port: 1, pad: 'x'.repeat(70_000) })));
    expect((parsed as { problem: string }).problem).toMatch(/larger than 65536 bytes/);
  });
});
