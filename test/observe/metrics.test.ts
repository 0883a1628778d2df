import { setImmediate as tick } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Endpoint, type Mesh, type MeshOptions, type Registry } from '../../src/index.js';
import { METRIC_FAMILIES } from '../../src/observe/metric-families.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { parseExposition, samples, value } from './exposition.js';

const meshes: Mesh[] = [];
const backends: Backend[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

function mesh(options: MeshOptions): Mesh {
  const m = createMesh(options);
  meshes.push(m);
  return m;
}

const parse = (m: Mesh) => parseExposition(m.metrics());
const ok = async (): Promise<string> => 'ok';
const boom = async (): Promise<never> => {
  throw new Error('boom');
};
/** A refused connection to the endpoint itself, as Node's net errors describe it (address and port). */
const refused = (ep: Endpoint): Error =>
  Object.assign(new Error(`connect ECONNREFUSED ${ep.host}:${ep.port}`), { code: 'ECONNREFUSED', address: ep.host, port: ep.port });
/** Never settles by itself; rejects when the attempt's signal aborts. */
const hang = (_ep: Endpoint, { signal }: { signal: AbortSignal }): Promise<never> =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

describe('mesh.metrics()', () => {
  it('declares every family once, with HELP and TYPE, names prefixed and counters ending in _total', () => {
    const families = parse(mesh({ registry: staticRegistry({}) }));
    expect([...families.keys()]).toEqual(Object.values(METRIC_FAMILIES).map((f) => f.name));
    for (const f of families.values()) {
      expect(f.name).toMatch(/^proxyless_[a-z_]+$/);
      expect(f.help.length).toBeGreaterThan(10);
      expect(f.name.endsWith('_total')).toBe(f.type === 'counter');
      expect(f.samples).toEqual([]); // no service called yet
    }
  });

  it('counts calls and attempts per endpoint, with cumulative duration histograms', async () => {
    const m = mesh({ registry: staticRegistry({ svc: ['127.0.0.1:1', '127.0.0.1:2'] }) });
    for (let i = 0; i < 20; i++) await m.call('svc', ok);
    const f = parse(m);
    expect(value(f, 'proxyless_requests_total', { service: 'svc', outcome: 'success' })).toBe(20);
    const perEndpoint = samples(f, 'proxyless_attempts_total', { service: 'svc', outcome: 'success' });
    expect(perEndpoint.map((s) => s.labels.endpoint).sort()).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    expect(perEndpoint.reduce((n, s) => n + s.value, 0)).toBe(20);
    for (const h of ['proxyless_request_duration_seconds', 'proxyless_attempt_duration_seconds']) {
      const buckets = samples(f, `${h}_bucket`, { service: 'svc' });
      expect(buckets.map((b) => b.labels.le)).toEqual(['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
      for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
      expect(buckets.at(-1)!.value).toBe(20);
      expect(value(f, `${h}_count`, { service: 'svc' })).toBe(20);
      expect(value(f, `${h}_sum`, { service: 'svc' })).toBeGreaterThanOrEqual(0);
    }
    expect(value(f, 'proxyless_endpoints', { service: 'svc', state: 'healthy' })).toBe(2);
    expect(value(f, 'proxyless_endpoint_in_flight', { endpoint: '127.0.0.1:1' })).toBe(0);
    expect(value(f, 'proxyless_breaker_state', { endpoint: '127.0.0.1:1', state: 'closed' })).toBe(1);
    expect(value(f, 'proxyless_retry_budget_balance', { service: 'svc' })).toBeGreaterThan(0);
    expect(value(f, 'proxyless_discovery_stale', { service: 'svc' })).toBe(0);
  });

  it('labels every way a call can end', async () => {
    const backend = await startBackend((_req, res) => res.writeHead(503).end('down'));
    backends.push(backend);
    const m = mesh({
      registry: staticRegistry({ svc: ['127.0.0.1:1'], empty: [], brk: ['127.0.0.1:3'], web: [backend.address] }),
      defaults: { outlier: false, breaker: false },
      services: {
        svc: { maxConcurrent: 1 },
        brk: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 } },
        web: { retry: false },
      },
    });
    await m.call('svc', ok);
    await expect(m.call('svc', boom)).rejects.toMatchObject({ code: 'ECALLFAILED' });
    await expect(m.call('svc', hang, { timeout: { attemptMs: 5, totalMs: 50 } })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    const caller = new AbortController();
    const cancelled = m.call('svc', hang, { signal: caller.signal });
    await expect(m.call('svc', ok)).rejects.toMatchObject({ code: 'EBULKHEAD' }); // one in flight, maxConcurrent 1
    caller.abort(new Error('changed my mind'));
    await expect(cancelled).rejects.toThrow('changed my mind');
    await expect(m.call('empty', ok)).rejects.toMatchObject({ code: 'ENOENDPOINTS' });
    await expect(m.call('brk', boom)).rejects.toMatchObject({ code: 'ECALLFAILED' });
    await expect(m.call('brk', ok)).rejects.toMatchObject({ code: 'ECIRCUITOPEN' });
    const res = await m.fetch('http://web/x');
    expect(res.status).toBe(503); // fetch semantics: the failing Response resolves...
    await res.arrayBuffer();

    const f = parse(m);
    const outcome = (service: string, o: string) => value(f, 'proxyless_requests_total', { service, outcome: o });
    expect(outcome('svc', 'success')).toBe(1);
    expect(outcome('svc', 'failure')).toBe(1);
    expect(outcome('svc', 'timeout')).toBe(1);
    expect(outcome('svc', 'cancelled')).toBe(1);
    expect(outcome('svc', 'rejected')).toBe(1);
    expect(value(f, 'proxyless_bulkhead_rejections_total', { service: 'svc' })).toBe(1);
    expect(outcome('empty', 'unavailable')).toBe(1);
    expect(outcome('brk', 'failure')).toBe(1);
    expect(outcome('brk', 'circuit_open')).toBe(1);
    expect(outcome('web', 'failure')).toBe(1); // ...but counts as a failed call
    expect(outcome('web', 'success')).toBe(0);
    // Admitted calls are timed, whatever their outcome; a rejected call never started.
    expect(value(f, 'proxyless_request_duration_seconds_count', { service: 'svc' })).toBe(4);
    // Attempts: the timed-out one failed, the aborted one was cancelled.
    const attempts = (o: string) => value(f, 'proxyless_attempts_total', { service: 'svc', endpoint: '127.0.0.1:1', outcome: o });
    expect([attempts('success'), attempts('failure'), attempts('cancelled')]).toEqual([1, 2, 1]);
    // The breaker opened on brk's endpoint.
    expect(value(f, 'proxyless_breaker_transitions_total', { service: 'brk', state: 'open' })).toBe(1);
    expect(value(f, 'proxyless_breaker_state', { service: 'brk', state: 'open' })).toBe(1);
    expect(value(f, 'proxyless_breaker_state', { service: 'brk', state: 'closed' })).toBe(0);
    expect(value(f, 'proxyless_endpoints', { service: 'brk', state: 'open' })).toBe(1);
    expect(value(f, 'proxyless_endpoints', { service: 'brk', state: 'healthy' })).toBe(0);
    // Breakers off: no breaker state series for that service.
    expect(samples(f, 'proxyless_breaker_state', { service: 'svc' })).toEqual([]);
  });

  it('counts retries, hedges, exhausted budgets and ejections', async () => {
    const m = mesh({
      registry: staticRegistry({ r: ['127.0.0.1:1', '127.0.0.1:2'], h: ['127.0.0.1:1', '127.0.0.1:2'], b: ['127.0.0.1:1', '127.0.0.1:2'], e: ['127.0.0.1:1', '127.0.0.1:2'] }),
      defaults: { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } },
      services: {
        h: { hedge: { delayMs: 1 } },
        b: { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1, budget: { ratio: 0, minPerSecond: 0 } } },
        e: { balancer: 'round-robin', retry: false, breaker: false, outlier: { consecutiveFailures: 2, maxEjectionPercent: 100 } },
      },
    });
    let n = 0;
    await m.call('r', async (ep) => {
      if (n++ === 0) throw refused(ep);
      return 'ok';
    });
    await m.call('h', (_ep, { attempt, signal }) =>
      attempt === 1 ? new Promise((resolve) => setTimeout(resolve, 30, 'first')) : hang(_ep, { signal }).catch(() => 'x'),
    { idempotent: true }, // hedges are for idempotent calls only
    );
    await expect(m.call('b', async (ep) => Promise.reject(refused(ep)))).rejects.toMatchObject({ code: 'ECALLFAILED' });
    for (let i = 0; i < 6; i++) {
      await m.call('e', async (ep) => (ep.port === 1 ? Promise.reject(new Error('bad')) : 'ok')).catch(() => undefined);
    }
    const f = parse(m);
    expect(value(f, 'proxyless_retries_total', { service: 'r' })).toBe(1);
    expect(value(f, 'proxyless_requests_total', { service: 'r', outcome: 'success' })).toBe(1);
    expect(value(f, 'proxyless_hedges_total', { service: 'h' })).toBe(1);
    expect(samples(f, 'proxyless_attempts_total', { service: 'h', outcome: 'cancelled' }).reduce((s, x) => s + x.value, 0)).toBe(1);
    expect(value(f, 'proxyless_retry_budget_exhausted_total', { service: 'b' })).toBe(1);
    expect(value(f, 'proxyless_retries_total', { service: 'b' })).toBe(0);
    expect(value(f, 'proxyless_ejections_total', { service: 'e' })).toBe(1);
    expect(value(f, 'proxyless_endpoint_ejected', { service: 'e', endpoint: '127.0.0.1:1' })).toBe(1);
    expect(value(f, 'proxyless_endpoints', { service: 'e', state: 'ejected' })).toBe(1);
    expect(value(f, 'proxyless_endpoints', { service: 'e', state: 'healthy' })).toBe(1);
  });

  it('escapes backslash, double quote and line feed in label values', async () => {
    const id = 'inst\\1 "blue"\nline2';
    const zone = 'eu-"west"\\1';
    const m = mesh({ registry: staticRegistry({ esc: [{ host: '127.0.0.1', port: 1, id, zone }] }) });
    await m.call('esc', ok);
    const text = m.metrics();
    expect(text).toContain('endpoint="inst\\\\1 \\"blue\\"\\nline2"');
    for (const line of text.split('\n')) expect(line.startsWith('line2')).toBe(false); // no raw line feed leaked
    const f = parseExposition(text);
    expect(value(f, 'proxyless_attempts_total', { endpoint: id, outcome: 'success' })).toBe(1);
    expect(value(f, 'proxyless_endpoint_info', { endpoint: id })).toBe(1);
    expect(samples(f, 'proxyless_endpoint_info')[0]!.labels.zone).toBe(zone);
  });

  it("keeps a removed endpoint's counters for a grace period, then drops its series (pruned at scrape time)", async () => {
    let t = 1_000;
    const registry = staticRegistry({ svc: ['127.0.0.1:1', '127.0.0.1:2'] });
    const m = mesh({ registry, clock: { now: () => t } });
    for (let i = 0; i < 10; i++) await m.call('svc', ok);
    const gone = '127.0.0.1:2';
    const before = value(parse(m), 'proxyless_attempts_total', { endpoint: gone, outcome: 'success' });
    expect(before).toBeGreaterThan(0);

    registry.set('svc', ['127.0.0.1:1']);
    t += 30_000;
    let f = parse(m);
    expect(value(f, 'proxyless_attempts_total', { endpoint: gone, outcome: 'success' })).toBe(before); // still scraped
    expect(samples(f, 'proxyless_endpoint_in_flight', { endpoint: gone })).toEqual([]); // gauges go at once
    expect(value(f, 'proxyless_endpoints', { service: 'svc', state: 'healthy' })).toBe(1);

    // The same id comes back within the grace period: one series, from its new state.
    registry.set('svc', ['127.0.0.1:1', gone]);
    f = parse(m); // the strict parser throws on a duplicate series
    expect(value(f, 'proxyless_attempts_total', { endpoint: gone, outcome: 'success' })).toBe(0);
    registry.set('svc', ['127.0.0.1:1']);

    t += 61_000;
    f = parse(m);
    expect(samples(f, 'proxyless_attempts_total', { endpoint: gone })).toEqual([]);
    expect(samples(f, 'proxyless_attempts_total', { endpoint: '127.0.0.1:1' })).toHaveLength(3);
  });

  it('flags stale discovery while the last good list serves, and counts discovery errors', async () => {
    let t = 1_000;
    let failing = false;
    const registry: Registry = {
      async resolve() {
        if (failing) throw new Error('registry down');
        return [{ id: 'a', host: '127.0.0.1', port: 1, weight: 1, tags: [], meta: {} }];
      },
    };
    const m = mesh({ registry, clock: { now: () => t }, discovery: { refreshMs: 1_000 } });
    await m.call('svc', ok);
    t += 500;
    let f = parse(m);
    expect(value(f, 'proxyless_discovery_age_seconds', { service: 'svc' })).toBeCloseTo(0.5);
    expect(value(f, 'proxyless_discovery_stale', { service: 'svc' })).toBe(0);

    failing = true;
    t += 1_000; // past refreshMs: the next call refreshes in the background and keeps the stale list
    await m.call('svc', ok);
    for (let i = 0; i < 5; i++) await tick();
    f = parse(m);
    expect(value(f, 'proxyless_discovery_stale', { service: 'svc' })).toBe(1);
    expect(value(f, 'proxyless_discovery_errors_total', { service: 'svc' })).toBe(1);
    expect(value(f, 'proxyless_discovery_age_seconds', { service: 'svc' })).toBeCloseTo(1.5);

    failing = false;
    t += 5_000; // past the retry backoff: the next refresh succeeds
    await m.call('svc', ok);
    for (let i = 0; i < 5; i++) await tick();
    expect(value(parse(m), 'proxyless_discovery_stale', { service: 'svc' })).toBe(0);
  });

  it('adds nothing to a service that is never called, and survives close()', async () => {
    const m = mesh({ registry: staticRegistry({ svc: ['127.0.0.1:1'] }) });
    await m.call('svc', ok);
    await m.close();
    expect(value(parse(m), 'proxyless_requests_total', { service: 'svc', outcome: 'success' })).toBe(1);
  });
});
