import { describe, expect, it } from 'vitest';
import type { Balancer, PickRequest } from '../../src/balancer/balancer.js';
import { createBalancer, type BalancerName } from '../../src/balancer/create.js';
import { LocalityBalancer, type ZoneSpill } from '../../src/balancer/locality.js';
import { RoundRobinBalancer } from '../../src/balancer/round-robin.js';
import { toEndpoint } from '../../src/endpoint/endpoint.js';
import { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { createMesh, seededRng, staticRegistry, type Endpoint, type MeshEvents } from '../../src/index.js';
import { balancerContract, eject } from '../contracts/balancer.contract.js';

// Endpoints without a zone are all non-local: the wrapper must then behave exactly as the balancer it wraps.
balancerContract('locality around round-robin (no local endpoints)', (rng) =>
  new LocalityBalancer(() => new RoundRobinBalancer(rng), { zone: 'a', overprovisioningFactor: 1.4, rng }),
);
balancerContract('locality around maglev (no local endpoints)', (rng) =>
  new LocalityBalancer(() => createBalancer('maglev', { rng }), { zone: 'a', overprovisioningFactor: 1.4, rng }),
);

/** `local` endpoints in zone a, then `remote` in zone b. */
function zoned(local: number, remote: number): EndpointState[] {
  const make = (zone: string, i: number): EndpointState =>
    new EndpointState(
      toEndpoint({ id: `${zone}${i}`, host: `10.${zone === 'a' ? 1 : 2}.0.${i + 1}`, port: 80, zone }, 'test'),
      { decayMs: 10_000, defaultRttMs: 30 },
      0,
    );
  return [...Array.from({ length: local }, (_, i) => make('a', i)), ...Array.from({ length: remote }, (_, i) => make('b', i))];
}

function balancer(name: BalancerName = 'round-robin', seed = 1) {
  const spills: ZoneSpill[] = [];
  const rng = seededRng(seed);
  const b = new LocalityBalancer(() => createBalancer(name, { rng }), {
    zone: 'a',
    overprovisioningFactor: 1.4,
    rng,
    onSpill: (s) => spills.push(s),
  });
  return { b, spills };
}

const req = (now: number, extra: Partial<PickRequest> = {}): PickRequest => ({ attempt: 1, tried: [], now, panic: false, ...extra });

/** Share of `n` picks that stay in zone a. */
function localShare(b: Balancer, set: readonly EndpointState[], n: number, now: number, extra: Partial<PickRequest> = {}): number {
  let local = 0;
  for (let i = 0; i < n; i++) if (b.pick(set, req(now, extra))?.endpoint.zone === 'a') local++;
  return local / n;
}

describe('LocalityBalancer (Envoy priority levels with overprovisioning factor 1.4)', () => {
  it('keeps all traffic local while healthy share × 1.4 ≥ 100 %', () => {
    const set = zoned(10, 10);
    const { b, spills } = balancer();
    b.update(set);
    expect(localShare(b, set, 5_000, 0)).toBe(1);
    for (const s of set.slice(0, 2)) eject(s); // 80 % healthy: 112 % → still all local
    expect(localShare(b, set, 5_000, 1_000)).toBe(1);
    expect(spills).toEqual([]);
  });

  it('spills the rest when the local zone falls below ~72 % healthy, and says so once per change', () => {
    const set = zoned(10, 10);
    const { b, spills } = balancer('random');
    b.update(set);
    localShare(b, set, 100, 0);
    for (const s of set.slice(0, 3)) eject(s); // 70 % healthy → 98 % local
    expect(localShare(b, set, 50_000, 1_000)).toBeCloseTo(0.98, 2);
    for (const s of set.slice(3, 5)) eject(s); // 50 % healthy → 70 % local
    expect(localShare(b, set, 50_000, 2_000)).toBeCloseTo(0.7, 2);
    expect(spills).toEqual([
      { from: 'a', to: ['b'], localHealthyPercent: 70, spillPercent: 2 },
      { from: 'a', to: ['b'], localHealthyPercent: 50, spillPercent: 30 },
    ]);
    for (const s of set.slice(0, 5)) s.outlier = undefined; // all back
    expect(localShare(b, set, 5_000, 3_000)).toBe(1);
    expect(spills.at(-1)).toEqual({ from: 'a', to: [], localHealthyPercent: 100, spillPercent: 0 });
    expect(spills).toHaveLength(3);
  });

  it('re-reads health at most every 100 ms of clock time', () => {
    const set = zoned(10, 10);
    const { b } = balancer('random');
    b.update(set);
    localShare(b, set, 10, 0);
    for (const s of set.slice(0, 5)) eject(s);
    expect(localShare(b, set, 1_000, 99)).toBe(1); // not re-read yet: the healthy local half takes it all
    expect(localShare(b, set, 20_000, 100)).toBeCloseTo(0.7, 1);
  });

  it('scales both zones up when their scores add to less than 100 % (Envoy normalisation)', () => {
    const set = zoned(10, 10);
    const { b } = balancer('random');
    b.update(set);
    for (const s of set.slice(0, 8)) eject(s); // local 20 % → 28
    for (const s of set.slice(10, 17)) eject(s); // remote 30 % → 42
    expect(localShare(b, set, 50_000, 0)).toBeCloseTo(28 / 70, 2);
  });

  it('counts endpoints without a zone, or of another zone, as non-local; with no local endpoint all goes out', () => {
    const set = zoned(0, 3);
    const { b, spills } = balancer();
    b.update(set);
    expect(localShare(b, set, 1_000, 0)).toBe(0);
    expect(spills).toEqual([{ from: 'a', to: ['b'], localHealthyPercent: 0, spillPercent: 100 }]);
  });

  it('in panic, ignores zones and follows the weights', () => {
    const set = zoned(2, 8);
    const { b } = balancer('random');
    b.update(set);
    expect(localShare(b, set, 50_000, 0, { panic: true })).toBeCloseTo(0.2, 2);
    expect(localShare(b, set, 1_000, 0)).toBe(1);
  });

  it('sends a retry out of the zone once every local endpoint was tried', () => {
    const set = zoned(2, 2);
    const { b } = balancer();
    b.update(set);
    const local = set.slice(0, 2);
    for (let i = 0; i < 100; i++) expect(b.pick(set, req(0, { tried: local, attempt: 3 }))?.endpoint.zone).toBe('b');
    expect(b.pick(set, req(0, { tried: set }))).toBeUndefined();
  });

  it('keeps a hash key on one endpoint of the local zone, and on one side while spilling', () => {
    const set = zoned(5, 5);
    const { b } = balancer('maglev');
    b.update(set);
    for (let i = 0; i < 200; i++) {
      const first = b.pick(set, req(0, { hashKey: `k${i}` }));
      expect(first?.endpoint.zone).toBe('a');
      expect(b.pick(set, req(0, { hashKey: `k${i}` }))).toBe(first);
    }
    for (const s of set.slice(0, 3)) eject(s); // 40 % → 56 % local
    const sides = Array.from({ length: 2_000 }, (_, i) => b.pick(set, req(1_000, { hashKey: `k${i}` })));
    const again = Array.from({ length: 2_000 }, (_, i) => b.pick(set, req(1_000, { hashKey: `k${i}` })));
    expect(again).toEqual(sides);
    const local = sides.filter((s) => s?.endpoint.zone === 'a').length / sides.length;
    expect(local).toBeCloseTo(0.56, 1);
  });
});

describe('zone-aware balancing in a mesh', () => {
  it('prefers the mesh zone, spills when it loses health, and emits zone-spill on changes only', async () => {
    const registry = staticRegistry({
      api: [
        { host: '10.1.0.1', port: 80, zone: 'a' },
        { host: '10.1.0.2', port: 80, zone: 'a' },
        { host: '10.2.0.1', port: 80, zone: 'b' },
        { host: '10.2.0.2', port: 80, zone: 'b' },
      ],
    });
    let now = 0;
    const mesh = createMesh({
      registry,
      zone: 'a',
      clock: { now: () => now },
      random: seededRng(5),
      defaults: { balancer: 'least-request', retry: false, breaker: false, outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 } },
    });
    const events: MeshEvents['zone-spill'][] = [];
    mesh.on('zone-spill', (e) => events.push(e));
    const zones = new Map<string, number>();
    let failHost = '';
    const call = () =>
      mesh
        .call('api', (ep: Endpoint) => {
          zones.set(ep.zone ?? '', (zones.get(ep.zone ?? '') ?? 0) + 1);
          if (ep.host === failHost) throw new Error('down');
          return 'ok';
        })
        .catch(() => undefined);
    for (let i = 0; i < 200; i++) await call();
    expect(zones.get('b') ?? 0).toBe(0);
    // One local endpoint fails once and is ejected: 50 % healthy → 70 % stays local.
    failHost = '10.1.0.1';
    for (let i = 0; i < 50 && events.length === 0; i++) {
      await call();
      now += 200;
    }
    zones.clear();
    for (let i = 0; i < 2_000; i++) await call();
    expect((zones.get('a') ?? 0) / 2_000).toBeCloseTo(0.7, 1);
    expect(events).toEqual([{ service: 'api', from: 'a', to: ['b'], localHealthyPercent: 50, spillPercent: 30 }]);
    await mesh.close();
  });

  it('is off with locality: false, and without a mesh zone', async () => {
    for (const options of [{ zone: 'a', defaults: { locality: false as const } }, {}]) {
      const mesh = createMesh({
        registry: staticRegistry({ api: [{ host: '10.1.0.1', port: 80, zone: 'a' }, { host: '10.2.0.1', port: 80, zone: 'b' }] }),
        random: seededRng(1),
        ...options,
        defaults: { balancer: 'round-robin', ...('defaults' in options ? options.defaults : {}) },
      });
      const zones = new Set<string | undefined>();
      for (let i = 0; i < 20; i++) await mesh.call('api', (ep: Endpoint) => zones.add(ep.zone));
      expect(zones).toEqual(new Set(['a', 'b']));
      await mesh.close();
    }
  });
});
