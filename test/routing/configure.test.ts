import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createMesh,
  seededRng,
  staticRegistry,
  TimeoutError,
  type AttemptContext,
  type Endpoint,
  type Mesh,
  type MeshConfigInput,
  type MeshEvents,
  type MeshOptions,
} from '../../src/index.js';

// Fake timers drive every timeout and the injected clock; nothing here sleeps or touches the network.
beforeEach(() => {
  vi.useFakeTimers();
});
const open: Mesh[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };
const ENDPOINTS = [
  { host: '127.0.0.1', port: 1001, tags: ['v1'] },
  { host: '127.0.0.1', port: 2001, tags: ['v2'] },
];
const SUBSETS = { api: { v1: { tags: ['v1'] }, v2: { tags: ['v2'] } } };
const DEFAULTS: MeshOptions['defaults'] = { retry: false, breaker: false, outlier: false, timeout: { attemptMs: 200, totalMs: 200 } };

function mesh(options: Partial<MeshOptions> = {}): Mesh {
  const m = createMesh({ registry: staticRegistry({ api: ENDPOINTS }), defaults: DEFAULTS, clock, random: seededRng(3), ...options });
  open.push(m);
  return m;
}

/** Hangs until its attempt is aborted, then rejects with the abort reason. */
const hang = (_ep: Endpoint, ctx: AttemptContext): Promise<never> =>
  new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));

/** Tracks a promise's settlement without awaiting it (no unhandled rejection either). */
function watch<T>(p: Promise<T>): { settled: () => boolean; result: () => Promise<T | unknown> } {
  let done = false;
  const r = p.then(
    (v) => ((done = true), v),
    (e: unknown) => ((done = true), e),
  );
  return { settled: () => done, result: () => r };
}

const toV = (subset: 'v1' | 'v2'): MeshConfigInput => ({ defaults: DEFAULTS, routes: { api: [{ name: 'main', backends: [{ subset }] }] }, subsets: SUBSETS });

describe('configure and calls in flight', () => {
  it('a call in flight across a configure finishes under its old timeout; the next call uses the new one', async () => {
    const m = mesh();
    await m.warmup(['api']);
    const first = watch(m.call('api', hang));
    await vi.advanceTimersByTimeAsync(50);
    const version = m.configure({ defaults: { ...DEFAULTS, timeout: { attemptMs: 1_000, totalMs: 1_000 } } });
    expect(version).toBe(2);
    const second = watch(m.call('api', hang)); // starts at t=50
    await vi.advanceTimersByTimeAsync(149); // t=199
    expect(first.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // t=200: the old 200 ms bound
    expect(first.settled()).toBe(true);
    const e1 = await first.result();
    expect(e1).toBeInstanceOf(TimeoutError);
    expect((e1 as TimeoutError).timeoutMs).toBe(200);
    await vi.advanceTimersByTimeAsync(849); // t=1049
    expect(second.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // t=1050: 1,000 ms after it started
    const e2 = await second.result();
    expect(e2).toBeInstanceOf(TimeoutError);
    expect((e2 as TimeoutError).timeoutMs).toBe(1_000);
  });

  it('a call in flight keeps the backend its route chose: its retry stays there after a configure moves the route', async () => {
    const retry = { retries: 1, minDelayMs: 10, maxDelayMs: 10, jitter: false };
    const m = mesh({ ...toV('v1'), defaults: { ...DEFAULTS, retry } });
    await m.warmup(['api']);
    const ports: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const call = watch(
      m.call(
        'api',
        async (ep, ctx) => {
          ports.push(ep.port);
          if (ctx.attempt === 1) {
            await gate;
            throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
          }
          return ep.port;
        },
        { idempotent: true },
      ),
    );
    await vi.advanceTimersByTimeAsync(5);
    m.configure({ ...toV('v2'), defaults: { ...DEFAULTS, retry } });
    release();
    await vi.advanceTimersByTimeAsync(50);
    expect(await call.result()).toBe(1001);
    expect(ports).toEqual([1001, 1001]);
    // A new call takes the new route.
    expect(await m.call('api', (ep) => ep.port)).toBe(2001);
  });
});

describe('validation', () => {
  it('an invalid configure throws a TypeError naming the option, and changes nothing', async () => {
    const m = mesh(toV('v1'));
    await m.warmup(['api']);
    const updates: unknown[] = [];
    m.on('config-update', (e) => updates.push(e));
    const before = m.config();
    const bad: [MeshConfigInput, string][] = [
      [{ routes: { api: [{ name: 'main', backends: [{ subset: 'v3' }] }] }, subsets: SUBSETS }, 'routes.api[0].backends[0].subset'],
      [{ ...toV('v2'), defaults: { retry: { retries: -1 } } }, 'defaults.retry.retries'],
      [{ ...toV('v2'), routes: { api: [{ name: 'main', backends: [{ subset: 'v2' }], fault: { abort: { status: 503, percent: 101 } } }] } }, 'routes.api[0].fault.abort.percent'],
      [{ ...toV('v2'), routes: { api: [{ name: 'main', match: [{ path: { regex: '(' } }] }] } }, 'routes.api[0].match[0].path.regex'],
    ];
    for (const [config, option] of bad) {
      let thrown: unknown;
      try {
        m.configure(config);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, option).toBeInstanceOf(TypeError);
      expect((thrown as Error).message).toContain(option);
    }
    expect(m.config().version).toBe(before.version);
    expect(m.config()).toEqual(before);
    expect(updates).toEqual([]);
    // Calls behave as before: the route still sends to v1, under the 200 ms timeout.
    for (let i = 0; i < 10; i++) expect(await m.call('api', (ep) => ep.port)).toBe(1001);
    const c = watch(m.call('api', hang));
    await vi.advanceTimersByTimeAsync(200);
    expect(((await c.result()) as TimeoutError).timeoutMs).toBe(200);
  });

  it('createMesh accepts routes and subsets; a route naming a missing subset is a TypeError at createMesh', async () => {
    const m = mesh(toV('v2'));
    expect(await m.call('api', (ep) => ep.port)).toBe(2001);
    expect(() =>
      createMesh({
        registry: staticRegistry({ api: ENDPOINTS }),
        routes: { api: [{ name: 'main', backends: [{ subset: 'v9' }] }] },
        subsets: SUBSETS,
      }),
    ).toThrow(/routes\.api\[0\]\.backends\[0\]\.subset/);
    expect(() =>
      createMesh({ registry: staticRegistry({ api: ENDPOINTS }), routes: { api: [{ name: 'main', backends: [{ subset: 'v1' }] }] } }),
    ).toThrow(TypeError);
  });
});

describe('versions, events and the view', () => {
  it('configure returns version+1, emits config-update, and config() is plain JSON of what is in force', async () => {
    const m = mesh();
    expect(m.config().version).toBe(1);
    expect(m.snapshot().config.version).toBe(1);
    const updates: MeshEvents['config-update'][] = [];
    m.on('config-update', (e) => updates.push(e));
    const config: MeshConfigInput = {
      defaults: DEFAULTS,
      routes: {
        api: [
          { name: 'beta', match: [{ headers: { 'x-beta': '1' } }], backends: [{ subset: 'v2' }], timeout: { attemptMs: 50 } },
          { name: 'split', backends: [{ subset: 'v1', weight: 9 }, { subset: 'v2', weight: 1 }] },
        ],
      },
      subsets: SUBSETS,
    };
    expect(m.configure(config)).toBe(2);
    expect(updates).toEqual([{ version: 2, source: 'api', services: ['api'] }]);
    const view = m.config();
    expect(view.version).toBe(2);
    expect(view.routes).toEqual(config.routes);
    expect(view.subsets).toEqual(SUBSETS);
    expect(view.sources).toEqual({ api: 'api' });
    expect(JSON.parse(JSON.stringify(view))).toEqual(view);
    expect(m.snapshot().config.version).toBe(2);
    expect(m.configure(config)).toBe(3);
    expect(updates[1]).toEqual({ version: 3, source: 'api', services: [] });
    // The route's own timeout is in force for the calls it takes.
    const c = watch(m.call('api', hang, { route: { headers: { 'x-beta': '1' } } }));
    await vi.advanceTimersByTimeAsync(50);
    expect(((await c.result()) as TimeoutError).timeoutMs).toBe(50);
  });

  it('the view is plain even when the policy holds a function', () => {
    const m = mesh();
    m.configure({ defaults: { ...DEFAULTS, classify: () => 'success' } });
    const view = m.config();
    expect((view.defaults as Record<string, unknown>).classify).toBe('[function]');
    expect(JSON.parse(JSON.stringify(view))).toEqual(view);
  });
});

describe('endpoint state across a configure', () => {
  it('counters, latency and an open breaker survive a configure that only changes routes', async () => {
    const breaker = { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, rollingWindowMs: 10_000 };
    const defaults = { ...DEFAULTS, breaker, balancer: 'round-robin' as const };
    const m = mesh({ defaults });
    await m.warmup(['api']);
    for (let i = 0; i < 20; i++) {
      const c = watch(
        m.call('api', async (ep) => {
          await new Promise((r) => setTimeout(r, 20));
          if (ep.port === 1001) throw new Error('boom');
          return ep.port;
        }),
      );
      await vi.advanceTimersByTimeAsync(20);
      expect(c.settled()).toBe(true);
    }
    const before = m.snapshot().services.api!.endpoints;
    expect(before.find((e) => e.port === 1001)?.breaker).toBe('open');
    expect(before.find((e) => e.port === 2001)?.requests).toBeGreaterThan(5);
    m.configure({ defaults, routes: { api: [{ name: 'all', backends: [{ subset: 'v1', weight: 1 }, { subset: 'v2', weight: 1 }] }] }, subsets: SUBSETS });
    const after = m.snapshot().services.api!.endpoints;
    expect(after).toEqual(before);
    // The open breaker still keeps v1 out: the route's share of v1 passes to v2.
    const ports = new Set<number>();
    for (let i = 0; i < 20; i++) ports.add(await m.call('api', (ep) => ep.port));
    expect(ports).toEqual(new Set([2001]));
  });
});
