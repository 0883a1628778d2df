import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/balancer/balancer.js';
import type { BalancerName } from '../../src/balancer/create.js';
import { SlowStart, slowStartFactor } from '../../src/balancer/slow-start.js';
import type { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { createMesh, seededRng, staticRegistry, type Endpoint } from '../../src/index.js';
import { makeStates } from '../contracts/balancer.contract.js';

const config = { windowMs: 10_000, aggression: 1, minWeightPercent: 10 };

describe('slowStartFactor (Envoy: max(minWeightPercent, (t / window) ^ (1 / aggression)))', () => {
  it('ramps linearly with aggression 1, from the minimum, to 1 at the end of the window', () => {
    expect(slowStartFactor(0, config)).toBe(0.1);
    expect(slowStartFactor(500, config)).toBe(0.1); // 5 % < the 10 % floor
    expect(slowStartFactor(2_500, config)).toBeCloseTo(0.25, 12);
    expect(slowStartFactor(7_500, config)).toBeCloseTo(0.75, 12);
    expect(slowStartFactor(10_000, config)).toBe(1);
    expect(slowStartFactor(60_000, config)).toBe(1);
  });

  it('bends the ramp with aggression', () => {
    const fast = { ...config, aggression: 2 };
    const slow = { ...config, aggression: 0.5 };
    expect(slowStartFactor(2_500, fast)).toBeCloseTo(0.5, 12); // 0.25 ^ (1/2)
    expect(slowStartFactor(5_000, slow)).toBeCloseTo(0.25, 12); // 0.5 ^ 2
    expect(slowStartFactor(1_000, { ...config, minWeightPercent: 0 })).toBeCloseTo(0.1, 12);
  });
});

describe('SlowStart', () => {
  it('sets the effective weight of new endpoints and retires them after the window', () => {
    const ramp = new SlowStart(config);
    const [a, b] = makeStates([2, 4]) as [EndpointState, EndpointState];
    ramp.begin([a, b], 1_000);
    expect(a.weight).toBeCloseTo(0.2, 12);
    expect(ramp.checkAt).toBe(1_100);
    expect(ramp.refresh(6_000)).toBe(true);
    expect(a.weight).toBeCloseTo(1, 12);
    expect(b.weight).toBeCloseTo(2, 12);
    ramp.forget([b]);
    expect(ramp.refresh(11_000)).toBe(true);
    expect(a.weight).toBe(2);
    expect(ramp.has(a)).toBe(false);
    expect(ramp.checkAt).toBe(Infinity);
    expect(ramp.refresh(12_000)).toBe(false);
  });
});

/** A mesh over a static registry with a hand-driven clock; calls complete at once. */
function meshWith(balancer: BalancerName | Balancer, slowStart: false | typeof config = config) {
  let now = 0;
  const registry = staticRegistry({ api: ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'] });
  const mesh = createMesh({
    registry,
    clock: { now: () => now },
    random: seededRng(3),
    defaults: { balancer, slowStart, breaker: false, outlier: false, retry: false },
  });
  const counts = new Map<string, number>();
  const call = (): Promise<unknown> =>
    mesh.call('api', (ep: Endpoint) => {
      counts.set(ep.host, (counts.get(ep.host) ?? 0) + 1);
      return 'ok';
    });
  return {
    mesh,
    registry,
    counts,
    call,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const share = (counts: Map<string, number>, host: string): number =>
  (counts.get(host) ?? 0) / [...counts.values()].reduce((a, b) => a + b, 0);

describe('slow start in a mesh', () => {
  it.each(['round-robin', 'random', 'least-request', 'peak-ewma'] as const)(
    '%s ramps an endpoint added after the first list, not the initial ones',
    async (balancer) => {
      const m = meshWith(balancer);
      for (let i = 0; i < 400; i++) await m.call();
      // The initial four share evenly from the start.
      for (const host of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) expect(share(m.counts, host)).toBeCloseTo(0.25, 1);
      m.registry.set('api', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80', '10.0.0.5:80']);
      const phase = async (ms: number): Promise<number> => {
        m.counts.clear();
        for (let i = 0; i < 4_000; i++) await m.call();
        const s = share(m.counts, '10.0.0.5');
        m.advance(ms);
        return s;
      };
      const atStart = await phase(2_500); // weight 0.1 of 4.1
      const quarter = await phase(5_000); // at 2.5 s: weight 0.25 of 4.25
      const threeQuarters = await phase(2_500); // at 7.5 s: 0.75 of 4.75
      const after = await phase(0); // at 10 s: 1 of 5
      expect(atStart).toBeLessThan(0.04);
      expect(Math.abs(quarter - 0.25 / 4.25)).toBeLessThan(0.02);
      expect(Math.abs(threeQuarters - 0.75 / 4.75)).toBeLessThan(0.03);
      expect(Math.abs(after - 0.2)).toBeLessThan(0.03);
      await m.mesh.close();
    },
  );

  it('is off by default: a new endpoint gets its full share at once', async () => {
    const m = meshWith('round-robin', false);
    await m.call();
    m.registry.set('api', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80', '10.0.0.5:80']);
    for (let i = 0; i < 1_000; i++) await m.call();
    expect(share(m.counts, '10.0.0.5')).toBeGreaterThan(0.19);
    await m.mesh.close();
  });

  it('recomputes weights on the call path at most every 100 ms of clock time, and tells the balancer', async () => {
    let updates = 0;
    const seen: number[] = [];
    const custom: Balancer = {
      name: 'first-new',
      update: (states) => {
        updates++;
        const added = states.find((s) => s.endpoint.host === '10.0.0.5');
        if (added) seen.push(added.weight);
      },
      pick: (states) => states[states.length - 1],
    };
    const m = meshWith(custom);
    await m.call();
    m.registry.set('api', ['10.0.0.1:80', '10.0.0.5:80']);
    m.advance(2_000); // past the 10 % floor (reached at 1 s)
    const before = updates;
    for (let i = 0; i < 1_000; i++) {
      await m.call();
      m.advance(1); // 1 s of calls, one per ms
    }
    const during = updates - before;
    expect(during).toBeGreaterThanOrEqual(9);
    expect(during).toBeLessThanOrEqual(11);
    // Each update saw a larger weight; none over the configured 1.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1] as number);
    expect(seen.at(-1)).toBeLessThanOrEqual(1);
    // After the window: no more updates from the ramp.
    m.advance(10_000);
    await m.call();
    const settled = updates;
    for (let i = 0; i < 100; i++) {
      await m.call();
      m.advance(50);
    }
    expect(updates).toBe(settled);
    await m.mesh.close();
  });
});

describe('slow start after revival', () => {
  it('an endpoint restored from ejection ramps up again', async () => {
    let t = 0;
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2'] }),
      defaults: {
        balancer: 'round-robin',
        retry: false,
        breaker: false,
        outlier: { consecutiveFailures: 1, baseEjectionMs: 1_000, maxEjectionMs: 1_000, maxEjectionPercent: 50 },
        slowStart: { windowMs: 10_000, minWeightPercent: 10 },
        panicThresholdPercent: 0,
      },
      clock: { now: () => t },
      random: seededRng(3),
    });
    const weights = (): number[] => mesh.snapshot().services.api!.endpoints.map((e) => e.weight);
    let ejected = false;
    mesh.on('ejected', () => (ejected = true));
    while (!ejected) await mesh.call('api', (ep) => (ep.port === 1 ? Promise.reject(new Error('x')) : 1)).catch(() => 0);
    expect(weights()).toEqual([1, 1]); // the first list is not ramped
    t = 1_000; // the ejection is over: the next pick restores endpoint 1
    await mesh.call('api', () => 1);
    expect(weights()[0]).toBeCloseTo(0.1, 5);
    t = 6_000;
    await mesh.call('api', () => 1);
    expect(weights()[0]).toBeCloseTo(0.5, 5);
    await mesh.close();
  });
});
