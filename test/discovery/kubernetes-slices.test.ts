// EndpointSlices to endpoints: which endpoints (KEP-1669, as kube-proxy), which port, which id, and what is
// left out; and the parsing of lists and watch lines, hostile ones included.
import { describe, expect, it } from 'vitest';
import { parseEventLine, parseList, parseSlice, selectEndpoints, ShapeError, type StoredSlice } from '../../src/discovery/kubernetes/slices.js';

type Json = Record<string, any>;
/** A raw EndpointSlice of `users`, as the API server writes it (discovery/v1/types.go). */
function raw(name: string, endpoints: Json[], over: Json = {}): Json {
  return {
    metadata: { name, namespace: 'default', resourceVersion: '5', labels: { 'kubernetes.io/service-name': 'users' } },
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    ...over,
  };
}
const ep = (ip: string, conditions: Json = { ready: true }, more: Json = {}): Json => ({ addresses: [ip], conditions, ...more });
const slices = (...raws: Json[]): StoredSlice[] => raws.map((r) => parseSlice(r)!);
const hosts = (list: readonly { host: string; port: number }[]): string[] => list.map((e) => `${e.host}:${e.port}`).sort();

describe('selectEndpoints', () => {
  it('uses ready endpoints, reading an absent ready as true (types.go), and leaves the not-ready out', () => {
    const list = selectEndpoints('users', slices(raw('a', [ep('10.0.0.1'), ep('10.0.0.2', {}), ep('10.0.0.3', { ready: null }), ep('10.0.0.4', { ready: false })])), undefined);
    expect(hosts(list)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  });

  it('leaves serving-and-terminating endpoints out while any endpoint is ready', () => {
    const list = selectEndpoints('users', slices(raw('a', [ep('10.0.0.1'), ep('10.0.0.2', { ready: false, serving: true, terminating: true })])), undefined);
    expect(hosts(list)).toEqual(['10.0.0.1:8080']);
  });

  it('falls back to the serving-and-terminating ones when none is ready, but never to not-serving ones (KEP-1669)', () => {
    const list = selectEndpoints(
      'users',
      slices(
        raw('a', [
          ep('10.0.0.1', { ready: false, serving: true, terminating: true }),
          ep('10.0.0.2', { ready: false, serving: false, terminating: true }),
          ep('10.0.0.3', { ready: false, serving: true, terminating: false }), // starting, not ready yet
          ep('10.0.0.4', { ready: false, terminating: true }), // serving absent reads as true
        ]),
      ),
      undefined,
    );
    expect(hosts(list)).toEqual(['10.0.0.1:8080', '10.0.0.4:8080']);
    expect(list.every((e) => e.meta.terminating === 'true')).toBe(true);
  });

  it('merges slices, counting an endpoint in two slices once, its ready copy', () => {
    const list = selectEndpoints(
      'users',
      slices(raw('a', [ep('10.0.0.1', { ready: false, serving: true, terminating: true }), ep('10.0.0.2')]), raw('b', [ep('10.0.0.1'), ep('10.0.0.3')])),
      undefined,
    );
    expect(hosts(list)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    expect(list.find((e) => e.host === '10.0.0.1')!.meta.terminating).toBeUndefined();
  });

  it('takes the zone, the pod and the node; the id is targetRef.uid@address, or the address alone', () => {
    const list = selectEndpoints(
      'users',
      slices(
        raw('a', [
          ep('10.0.0.1', { ready: true }, { zone: 'eu-west-1a', nodeName: 'node-7', targetRef: { kind: 'Pod', name: 'users-abc', namespace: 'default', uid: '0b6c3a62-9d5e-4b43-9a57-1b2a1d0c6f11' } }),
          ep('10.0.0.2'),
        ]),
      ),
      undefined,
    );
    const [a, b] = [...list].sort((x, y) => x.host.localeCompare(y.host));
    expect(a).toMatchObject({ id: '0b6c3a62-9d5e-4b43-9a57-1b2a1d0c6f11@10.0.0.1:8080', zone: 'eu-west-1a', weight: 1, meta: { pod: 'users-abc', node: 'node-7' } });
    expect(b!.id).toBe('10.0.0.2:8080');
    expect(b!.zone).toBeUndefined();
  });

  it('picks the port by name or by number; the only port by default; several without a choice is an error naming them', () => {
    const two = [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'metrics', protocol: 'TCP', port: 9090 }];
    const s = slices(raw('a', [ep('10.0.0.1')], { ports: two }));
    expect(hosts(selectEndpoints('users', s, 'metrics'))).toEqual(['10.0.0.1:9090']);
    expect(hosts(selectEndpoints('users', s, 8080))).toEqual(['10.0.0.1:8080']);
    expect(() => selectEndpoints('users', s, undefined)).toThrow(/several ports \(http, metrics\): choose one with kubernetesRegistry\.port/);
    // An unnamed single port (a one-port Service) is the only port too; a UDP port does not count.
    const unnamed = slices(raw('b', [ep('10.0.0.2')], { ports: [{ port: 53, protocol: 'UDP', name: 'dns' }, { port: 8443 }] }));
    expect(hosts(selectEndpoints('users', unnamed, undefined))).toEqual(['10.0.0.2:8443']);
    // Slices of one port name but different numbers (pods with different named container ports) each use their own.
    const mixed = slices(raw('c', [ep('10.0.0.3')]), raw('d', [ep('10.0.0.4')], { ports: [{ name: 'http', port: 8081 }] }));
    expect(hosts(selectEndpoints('users', mixed, 'http'))).toEqual(['10.0.0.3:8080', '10.0.0.4:8081']);
  });

  it('a port name or number that no slice with endpoints carries is an error listing the ports seen, not an empty list', () => {
    const two = [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'metrics', protocol: 'TCP', port: 9090 }, { name: 'dns', protocol: 'UDP', port: 53 }];
    const s = slices(raw('a', [ep('10.0.0.1')], { ports: two }));
    expect(() => selectEndpoints('users', s, 'grpc')).toThrow(/^its IPv4 EndpointSlices carry no TCP port named 'grpc'; the ports they carry: dns \(53, not TCP\), http \(8080\), metrics \(9090\)$/);
    expect(() => selectEndpoints('users', s, 'dns')).toThrow(/no TCP port named 'dns'/);
    // The Service's own port (80, in front of targetPort 8080) is not in any slice.
    expect(() => selectEndpoints('users', s, 80)).toThrow(/carry no TCP endpoint port 80 \(a number is the pods' targetPort, not the Service's port\)/);
    // A Service with no endpoints keeps a placeholder slice without ports: that is no endpoints, not an error.
    const placeholder = slices(raw('p', [], { ports: null }));
    expect(selectEndpoints('users', placeholder, 'grpc')).toEqual([]);
    expect(selectEndpoints('users', [], 'grpc')).toEqual([]);
    // Some slices with the port (a rollout adding it) are enough.
    expect(hosts(selectEndpoints('users', [...s, ...slices(raw('b', [ep('10.0.0.2')], { ports: [{ name: 'grpc', port: 9000 }] }))], 'grpc'))).toEqual(['10.0.0.2:9000']);
  });

  it('reads only booleans as conditions: absent or null is the default, anything else the least trusting value', () => {
    const list = selectEndpoints(
      'users',
      slices(
        raw('a', [
          ep('10.0.0.1', { ready: 'false' }), // a string is not a boolean: not ready
          ep('10.0.0.2', { ready: 1 }),
          ep('10.0.0.3', { ready: true, terminating: 'no' }), // ready wins; shown as terminating
          ep('10.0.0.4', { ready: null, serving: null, terminating: null }),
        ]),
      ),
      undefined,
    );
    expect(hosts(list)).toEqual(['10.0.0.3:8080', '10.0.0.4:8080']);
    expect(list.find((e) => e.host === '10.0.0.3')!.meta.terminating).toBe('true');
    // None ready: garbage `serving` is not serving, so only the well-formed terminating one is the fallback.
    const fallback = selectEndpoints('users', slices(raw('b', [ep('10.0.0.5', { ready: false, serving: 'yes', terminating: true }), ep('10.0.0.6', { ready: false, serving: true, terminating: true })])), undefined);
    expect(hosts(fallback)).toEqual(['10.0.0.6:8080']);
  });

  it('uses one address family of a dual-stack Service (IPv4 by default), so that no pod counts twice', () => {
    const pod = (ip: string, uid: string) => ep(ip, { ready: true }, { targetRef: { kind: 'Pod', name: `p-${uid}`, uid } });
    const dual = slices(
      raw('v4', [pod('10.0.0.1', 'a1'), pod('10.0.0.2', 'b2')]),
      raw('v6', [pod('fd00::1', 'a1'), pod('fd00::2', 'b2')], { addressType: 'IPv6' }),
    );
    expect(hosts(selectEndpoints('users', dual, 'http'))).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    expect(hosts(selectEndpoints('users', dual, 'http', 'IPv6'))).toEqual(['fd00::1:8080', 'fd00::2:8080']);
    expect(hosts(selectEndpoints('users', dual, 'http', 'IPv4'))).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    // IPv6 only (or IPv4 slices that are empty placeholders): IPv6.
    const v6 = slices(raw('empty', []), raw('v6', [pod('fd00::1', 'a1')], { addressType: 'IPv6' }));
    expect(hosts(selectEndpoints('users', v6, 'http'))).toEqual(['fd00::1:8080']);
    expect(selectEndpoints('users', v6, 'http', 'IPv4')).toEqual([]);
  });

  it('canonicalizes IPv6 addresses before counting an endpoint in two slices once', () => {
    const s = slices(raw('a', [ep('FD00:0:0::5'), ep('fd00::6')], { addressType: 'IPv6' }), raw('b', [ep('fd00:0000::5'), ep('fd00:0:0:0:0:0:0:6')], { addressType: 'IPv6' }));
    const list = selectEndpoints('users', s, 'http');
    expect(hosts(list)).toEqual(['fd00::5:8080', 'fd00::6:8080']);
    expect(list.map((e) => e.id).sort()).toEqual(['[fd00::5]:8080', '[fd00::6]:8080']);
  });

  it('leaves out hostile data: bad addresses, wrong families, FQDN slices, port 0 and 70000, other services', () => {
    const s = slices(
      raw('a', [ep('10.0.0.1'), ep('999.1.1.1'), ep('10.0.0.1:80'), ep('fe80::1%eth0'), ep('::1'), ep('010.0.0.2'), { addresses: [] }, { addresses: [7] }, 'junk' as never, null as never]),
      raw('v6', [ep('fd00::5'), ep('10.0.0.9'), ep('fe80::1%eth0')], { addressType: 'IPv6' }),
      raw('fqdn', [ep('users.example.com')], { addressType: 'FQDN' }),
      raw('zero', [ep('10.0.1.1')], { ports: [{ name: 'http', port: 0 }] }),
      raw('big', [ep('10.0.1.2')], { ports: [{ name: 'http', port: 70000 }] }),
      raw('text', [ep('10.0.1.3')], { ports: [{ name: 'http', port: '8080' }] }),
      raw('other', [ep('10.0.1.4')], { metadata: { name: 'other', labels: { 'kubernetes.io/service-name': 'billing' } } }),
      raw('nolabel', [ep('10.0.1.5')], { metadata: { name: 'nolabel' } }),
      raw('noports', [ep('10.0.1.6')], { ports: null }),
    );
    expect(hosts(selectEndpoints('users', s, 'http'))).toEqual(['10.0.0.1:8080']);
    expect(hosts(selectEndpoints('users', s, 'http', 'IPv6'))).toEqual(['fd00::5:8080']);
  });
});

describe('parseList and parseEventLine (metav1 shapes)', () => {
  it('reads an EndpointSliceList, and refuses one without a resourceVersion or items', () => {
    const list = parseList({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '42' }, items: [raw('a', [ep('10.0.0.1')])] });
    expect(list.resourceVersion).toBe('42');
    expect(list.slices.map((s) => s.name)).toEqual(['a']);
    expect(parseList({ metadata: { resourceVersion: '1' }, items: null }).slices).toEqual([]);
    expect(() => parseList({ items: [] })).toThrow(ShapeError);
    expect(() => parseList({ metadata: { resourceVersion: '1' }, items: {} })).toThrow(/no items array/);
    expect(() => parseList([])).toThrow(ShapeError);
    expect(() => parseList({ metadata: { resourceVersion: '1' }, items: [{ metadata: {} }] })).toThrow(/items\[0\]/);
  });

  it('reads WatchEvents: ADDED, MODIFIED, DELETED, BOOKMARK and ERROR with its Status', () => {
    const object = { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', ...raw('a', [ep('10.0.0.1')]) };
    for (const type of ['ADDED', 'MODIFIED', 'DELETED'] as const) {
      expect(parseEventLine(JSON.stringify({ type, object }))).toMatchObject({ type, resourceVersion: '5', slice: { name: 'a', service: 'users' } });
    }
    expect(parseEventLine('{"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"12746"}}}')).toEqual({
      type: 'BOOKMARK',
      resourceVersion: '12746',
    });
    const error = { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version: 1 (9)', reason: 'Expired', code: 410 } };
    expect(parseEventLine(JSON.stringify(error))).toEqual({ type: 'ERROR', code: 410, reason: 'Expired', message: 'too old resource version: 1 (9)' });
    expect(parseEventLine('')).toBeUndefined();
    expect(parseEventLine('  \r')).toBeUndefined();
  });

  it('throws a ShapeError for garbage, without quoting it', () => {
    for (const line of ['not json', '{"type":"ADDED"}', '{"type":"ADDED","object":{"metadata":{"name":"a"}}}', '{"type":"BOGUS","object":{"metadata":{"resourceVersion":"1"}}}', '[1,2]', '{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"3"}}}']) {
      expect(() => parseEventLine(line), line).toThrow(ShapeError);
    }
    expect(() => parseEventLine('secret-token-abc not json')).toThrow(/^a watch line is not JSON \(25 bytes\)$/);
  });
});
