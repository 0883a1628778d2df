// withTelemetry with the real OpenTelemetry SDK: spans per call and per attempt (in-memory exporter), the
// traceparent each attempt sends (a node:http backend reads it), and the OTel metrics (a MetricReader's collect()).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as otel from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { DataPointType, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMesh, staticRegistry, withTelemetry, type Mesh, type MeshEvents } from '../../src/index.js';
import { PROXYLESS_VERSION } from '../../src/observe/telemetry.js';
import { meshCore } from '../../src/mesh-core.js';
import { meshDispatcher } from '../../src/undici.js';
import { HTTP_DURATION_BUCKETS } from '../../src/observe/telemetry-metrics.js';

/** A reader the test collects from by hand. */
class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Seen {
  readonly url: string;
  readonly traceparent: string | undefined;
  readonly deadline: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
  /** Arrival order across every backend of the file. */
  readonly at: number;
}

/** A backend on 127.0.0.1:0: `plan` answers each request (status, or 'hang' until the client goes away). */
async function backend(plan: (n: number) => number | 'hang'): Promise<{ server: http.Server; address: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url!, traceparent: req.headers.traceparent as string | undefined, deadline: req.headers['x-request-deadline-ms'] as string | undefined, headers: req.headers, at: ++arrivals });
    const answer = plan(seen.length);
    if (answer === 'hang') {
      const timer = setTimeout(() => res.end('late'), 5_000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    res.writeHead(answer).end(String(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

type Backend = Awaited<ReturnType<typeof backend>>;

/** The two backends, the one that saw the first request first (seen order is by arrival: `at` stamps it). */
function firstSeenFirst(x: Backend, y: Backend): [Backend, Backend] {
  if (y.seen.length > 0 && (x.seen.length === 0 || y.seen[0]!.at < x.seen[0]!.at)) return [y, x];
  return [x, y];
}

let arrivals = 0;
const servers: http.Server[] = [];
const meshes: Mesh[] = [];
let exporter: InMemorySpanExporter;
let reader: TestReader;
let tracerProvider: BasicTracerProvider;
let meterProvider: MeterProvider;

beforeAll(() => {
  otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  otel.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  otel.context.disable();
  otel.propagation.disable();
});
beforeEach(() => {
  exporter = new InMemorySpanExporter();
  tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  otel.trace.setGlobalTracerProvider(tracerProvider);
  reader = new TestReader();
  meterProvider = new MeterProvider({ readers: [reader] });
  otel.metrics.setGlobalMeterProvider(meterProvider);
});
afterEach(async () => {
  for (const mesh of meshes.splice(0)) await mesh.close();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  otel.trace.disable();
  otel.metrics.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
});

function meshOf(services: Record<string, string[]>, defaults: Parameters<typeof createMesh>[0]['defaults'] = {}): Mesh {
  const mesh = createMesh({ registry: staticRegistry(services), defaults: { balancer: 'round-robin', ...defaults } });
  meshes.push(mesh);
  return mesh;
}

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const callSpans = (): ReadableSpan[] => spans().filter((s) => s.kind === otel.SpanKind.INTERNAL && s.name.startsWith('proxyless '));
const attemptSpans = (): ReadableSpan[] => spans().filter((s) => s.kind === otel.SpanKind.CLIENT);
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const traceparentOf = (s: ReadableSpan): string => `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`;

/** Every data point of an instrument, as [attributes, value] (sum, or a histogram's count). */
function points(metrics: ResourceMetrics, name: string): { attributes: otel.Attributes; value: number; boundaries?: number[] }[] {
  const out: { attributes: otel.Attributes; value: number; boundaries?: number[] }[] = [];
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const p of metric.dataPoints) {
        if (metric.dataPointType === DataPointType.HISTOGRAM) {
          const h = p.value as { count: number; buckets: { boundaries: number[] } };
          out.push({ attributes: p.attributes, value: h.count, boundaries: h.buckets.boundaries });
        } else {
          out.push({ attributes: p.attributes, value: p.value as number });
        }
      }
    }
  }
  return out;
}

describe('withTelemetry: spans', () => {
  it('a retried call: one call span, two attempt spans under it, resend_count 1 on the second, a traceparent of its own each', async () => {
    // Whichever endpoint the balancer picks first answers 503; every other request, 200.
    let total = 0;
    const plan = (): number => (++total === 1 ? 503 : 200);
    const one = await backend(plan);
    const two = await backend(plan);
    servers.push(one.server, two.server);
    const mesh = meshOf({ api: [one.address, two.address] }, { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } });
    const telemetry = withTelemetry(mesh, otel);
    const tracer = otel.trace.getTracer('test');
    const res = await tracer.startActiveSpan('incoming', async (parent) => {
      try {
        return await mesh.fetch('http://api/v1/me?sig=secret&page=2');
      } finally {
        parent.end();
      }
    });
    expect(res.status).toBe(200);
    await res.text();
    const [b, other] = firstSeenFirst(one, two);

    const [call] = callSpans();
    expect(callSpans()).toHaveLength(1);
    const incoming = spans().find((s) => s.name === 'incoming')!;
    expect(parentOf(call!)).toBe(incoming.spanContext().spanId); // under the caller's active span
    expect(call!.attributes).toMatchObject({ 'proxyless.service': 'api', 'proxyless.outcome': 'success' });
    expect(call!.status.code).toBe(otel.SpanStatusCode.UNSET);

    const attempts = attemptSpans().sort((x, y) => Number(x.attributes['proxyless.attempt']) - Number(y.attributes['proxyless.attempt']));
    expect(attempts).toHaveLength(2);
    for (const a of attempts) {
      expect(parentOf(a)).toBe(call!.spanContext().spanId);
      expect(a.spanContext().traceId).toBe(call!.spanContext().traceId);
      expect(a.name).toBe('GET');
      expect(a.attributes['http.request.method']).toBe('GET');
    }
    const [first, second] = attempts as [ReadableSpan, ReadableSpan];
    const firstPort = Number(b.address.split(':')[1]);
    expect(first.attributes).toMatchObject({
      'server.address': '127.0.0.1',
      'server.port': firstPort,
      'url.full': `http://${b.address}/v1/me?sig=REDACTED&page=2`,
      'http.response.status_code': 503,
      'error.type': '503',
      'proxyless.endpoint.id': b.address,
      'proxyless.outcome': 'failure',
    });
    expect(first.attributes['http.request.resend_count']).toBeUndefined();
    expect(first.status.code).toBe(otel.SpanStatusCode.ERROR);
    expect(second.attributes).toMatchObject({ 'http.request.resend_count': 1, 'http.response.status_code': 200, 'server.port': Number(other.address.split(':')[1]) });
    expect(second.attributes['error.type']).toBeUndefined();
    expect(second.status.code).toBe(otel.SpanStatusCode.UNSET);

    // What each backend received: the traceparent of its own attempt span, two different ones.
    expect(b.seen.map((s) => s.traceparent)).toEqual([traceparentOf(first)]);
    expect(other.seen.map((s) => s.traceparent)).toEqual([traceparentOf(second)]);
    expect(traceparentOf(first)).not.toBe(traceparentOf(second));
    telemetry.close();
  });

  it('never overwrites a traceparent the caller set, and keeps the deadline header per attempt', async () => {
    const b = await backend(() => 200);
    servers.push(b.server);
    const mesh = createMesh({ registry: staticRegistry({ api: [b.address] }), defaults: { deadline: {} } });
    meshes.push(mesh);
    withTelemetry(mesh, otel);
    const own = '00-11111111111111111111111111111111-2222222222222222-01';
    await (await mesh.fetch('http://api/own', { headers: { TraceParent: own } })).text();
    await (await mesh.fetch(new Request('http://api/req', { headers: { 'x-a': '1' } }))).text();
    expect(b.seen[0]!.traceparent).toBe(own);
    expect(b.seen[1]!.traceparent).toBe(traceparentOf(attemptSpans().find((s) => String(s.attributes['url.full']).endsWith('/req'))!));
    for (const s of b.seen) expect(Number(s.deadline)).toBeGreaterThan(0); // the deadline policy's header still goes too
  });

  it('the undici path: each attempt of a dispatch sends its own span\'s traceparent, with the HTTP attributes', async () => {
    // Whichever endpoint the balancer picks first answers 503; every other request, 200.
    let total = 0;
    const plan = (): number => (++total === 1 ? 503 : 200);
    const one = await backend(plan);
    const two = await backend(plan);
    servers.push(one.server, two.server);
    const mesh = meshOf({ api: [one.address, two.address] }, { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } });
    withTelemetry(mesh, otel);
    const dispatcher = meshDispatcher(mesh);
    try {
      const own = '00-11111111111111111111111111111111-2222222222222222-01';
      const res = await request('http://api/u?x=1', { dispatcher });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      const kept = await request('http://api/own', { dispatcher, headers: { traceparent: own } });
      await kept.body.text();
      const [b, other] = firstSeenFirst(one, two);
      const attempts = attemptSpans().filter((s) => String(s.attributes['url.full']).includes('/u?'));
      attempts.sort((x, y) => Number(x.attributes['proxyless.attempt']) - Number(y.attributes['proxyless.attempt']));
      expect(attempts).toHaveLength(2);
      expect(attempts[0]!.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 503, 'url.full': `http://${b.address}/u?x=1` });
      expect(attempts[1]!.attributes).toMatchObject({ 'http.request.resend_count': 1, 'http.response.status_code': 200 });
      expect(b.seen[0]!.traceparent).toBe(traceparentOf(attempts[0]!));
      expect(other.seen[0]!.traceparent).toBe(traceparentOf(attempts[1]!));
      expect([...b.seen, ...other.seen].find((s) => s.url === '/own')!.traceparent).toBe(own);
    } finally {
      await dispatcher.close();
    }
  });

  it('a propagator header the caller set in another case is the caller\'s alone, on mesh.fetch and the undici path', async () => {
    // HTTP header names are case-insensitive: a propagator may write `X-Trace-Id` where the caller set `x-trace-id`.
    const b = await backend(() => 200);
    servers.push(b.server);
    const mesh = meshOf({ api: [b.address] });
    const inject = (_context: unknown, carrier: Record<string, string>): void => {
      carrier['X-Trace-Id'] = 'ours';
    };
    withTelemetry(mesh, { ...otel, propagation: { ...otel.propagation, inject } } as unknown as typeof otel);
    await (await mesh.fetch('http://api/f', { headers: { 'x-trace-id': 'mine' } })).text();
    await (await mesh.fetch('http://api/g')).text();
    const dispatcher = meshDispatcher(mesh);
    try {
      await (await request('http://api/u', { dispatcher, headers: { 'x-trace-id': 'mine' } })).body.text();
      await (await request('http://api/v', { dispatcher })).body.text();
    } finally {
      await dispatcher.close();
    }
    expect(b.seen.map((s) => [s.url, s.headers['x-trace-id']])).toEqual([
      ['/f', 'mine'],
      ['/g', 'ours'],
      ['/u', 'mine'],
      ['/v', 'ours'],
    ]);
  });

  it('every way a call ends, ends its spans and forgets it: caller abort, total timeout, close() mid-call', async () => {
    const b = await backend((n) => (n <= 3 ? 'hang' : 200));
    servers.push(b.server);
    const mesh = meshOf({ api: [b.address] }, { retry: false });
    withTelemetry(mesh, otel);
    const instrument = meshCore(mesh, 'test').env.instrument as unknown as { calls: Map<object, unknown>; attempts: Map<object, unknown> };
    const abort = new AbortController();
    const aborted = mesh.fetch('http://api/abort', { signal: abort.signal });
    const timedOut = mesh.fetch('http://api/timeout', { timeout: { totalMs: 300 } });
    const closed = mesh.call('api', () => new Promise<never>(() => {}));
    await vi.waitFor(() => expect(b.seen).toHaveLength(2), { timeout: 2_000, interval: 5 });
    expect(instrument.calls.size).toBe(3);
    expect(instrument.attempts.size).toBe(3);
    abort.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    await expect(timedOut).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    await mesh.close();
    await expect(closed).rejects.toMatchObject({ code: 'ECLOSED' });
    await vi.waitFor(() => expect(callSpans()).toHaveLength(3), { timeout: 2_000, interval: 5 });
    expect(attemptSpans()).toHaveLength(3);
    expect(instrument.calls.size).toBe(0);
    expect(instrument.attempts.size).toBe(0);
    const outcome = (s: ReadableSpan): unknown[] => [s.attributes['proxyless.outcome'], s.attributes['error.type'], s.status.code];
    const byName = (url: string): ReadableSpan => attemptSpans().find((s) => String(s.attributes['url.full']).endsWith(url))!;
    expect(outcome(byName('/abort'))).toEqual(['cancelled', 'AbortError', otel.SpanStatusCode.ERROR]);
    expect(outcome(byName('/timeout'))).toEqual(['failure', 'ETIMEDOUT', otel.SpanStatusCode.ERROR]);
    expect(outcome(attemptSpans().find((s) => s.name === 'api')!)).toEqual(['cancelled', 'ECLOSED', otel.SpanStatusCode.ERROR]);
    expect(callSpans().map((s) => s.attributes['proxyless.outcome']).sort()).toEqual(['cancelled', 'cancelled', 'timeout']);
  });

  it('a hedge: two attempt spans, the loser cancelled without an error, the winner with resend_count 1', async () => {
    // Whichever endpoint the balancer picks first hangs; the hedge's, 200.
    let total = 0;
    const plan = (): number | 'hang' => (++total === 1 ? 'hang' : 200);
    const one = await backend(plan);
    const two = await backend(plan);
    servers.push(one.server, two.server);
    const mesh = meshOf({ api: [one.address, two.address] }, { hedge: { delayMs: 20, maxAttempts: 2 }, retry: false });
    withTelemetry(mesh, otel);
    const res = await mesh.fetch('http://api/hedged');
    expect(res.status).toBe(200);
    await res.text();
    await vi.waitFor(() => expect(attemptSpans()).toHaveLength(2), { timeout: 2_000, interval: 5 });
    const [slow, fast] = firstSeenFirst(one, two);
    const loser = attemptSpans().find((s) => s.attributes['server.port'] === Number(slow.address.split(':')[1]))!;
    const winner = attemptSpans().find((s) => s !== loser)!;
    expect(loser.attributes).toMatchObject({ 'proxyless.outcome': 'cancelled', 'proxyless.attempt': 1 });
    expect(loser.attributes['error.type']).toBeUndefined();
    expect(loser.status.code).toBe(otel.SpanStatusCode.UNSET);
    expect(winner.attributes).toMatchObject({ 'proxyless.outcome': 'success', 'http.request.resend_count': 1, 'http.response.status_code': 200 });
    expect(slow.seen[0]!.traceparent).toBe(traceparentOf(loser));
    expect(fast.seen[0]!.traceparent).toBe(traceparentOf(winner));
    expect(callSpans()[0]!.attributes['proxyless.outcome']).toBe('success');
  });

  it('failures: a refused connection (error.type its code) and a 503 answer (error.type "503"), status ERROR', async () => {
    const gone = await backend(() => 200);
    const port = (gone.server.address() as AddressInfo).port;
    await new Promise((resolve) => gone.server.close(resolve));
    const always503 = await backend(() => 503);
    servers.push(always503.server);
    const mesh = meshOf({ dead: [`127.0.0.1:${port}`], sad: [always503.address] }, { retry: false });
    withTelemetry(mesh, otel);
    await expect(mesh.fetch('http://dead/x')).rejects.toThrow(/ECONNREFUSED/);
    const res = await mesh.fetch('http://sad/x');
    expect(res.status).toBe(503);
    await res.text();

    const dead = callSpans().find((s) => s.attributes['proxyless.service'] === 'dead')!;
    expect(dead.attributes).toMatchObject({ 'proxyless.outcome': 'failure', 'error.type': 'ECONNREFUSED' });
    expect(dead.status.code).toBe(otel.SpanStatusCode.ERROR);
    const deadAttempt = attemptSpans().find((s) => s.attributes['server.port'] === port)!;
    expect(deadAttempt.attributes).toMatchObject({ 'error.type': 'ECONNREFUSED', 'proxyless.outcome': 'failure' });
    expect(deadAttempt.attributes['http.response.status_code']).toBeUndefined();
    expect(deadAttempt.status.code).toBe(otel.SpanStatusCode.ERROR);

    const sad = callSpans().find((s) => s.attributes['proxyless.service'] === 'sad')!;
    expect(sad.attributes).toMatchObject({ 'proxyless.outcome': 'failure', 'error.type': '503' });
    expect(sad.status.code).toBe(otel.SpanStatusCode.ERROR);
  });

  it('other outcomes: a call a fallback answered keeps its failure, a full bulkhead is rejected', async () => {
    const mesh = meshOf({ db: ['127.0.0.1:7001'] }, { retry: false, maxConcurrent: 1 });
    withTelemetry(mesh, otel);
    const failing = (): never => {
      throw Object.assign(new Error('boom'), { code: 'EBOOM' });
    };
    expect(await mesh.call('db', failing, { fallback: () => 'cached' })).toBe('cached');
    let release!: () => void;
    const holding = mesh.call('db', () => new Promise<void>((resolve) => (release = resolve)));
    await expect(mesh.call('db', () => 'never')).rejects.toThrow(/maxConcurrent|bulkhead/i);
    await vi.waitFor(() => expect(release).toBeTypeOf('function'), { timeout: 2_000, interval: 1 });
    release();
    await holding;
    expect(callSpans()).toHaveLength(3);
    const outcomes = callSpans().map((c) => [c.attributes['proxyless.outcome'], c.attributes['error.type'], c.status.code]);
    expect(outcomes).toEqual(
      expect.arrayContaining([
        ['failure', 'EBOOM', otel.SpanStatusCode.ERROR],
        ['rejected', 'EBULKHEAD', otel.SpanStatusCode.ERROR],
        ['success', undefined, otel.SpanStatusCode.UNSET],
      ]),
    );
    expect(attemptSpans()).toHaveLength(2); // the rejected call made no attempt
  });

  it('mesh.call: fn runs with its attempt span active, before and after an await', async () => {
    const mesh = meshOf({ db: ['127.0.0.1:7001', '127.0.0.1:7002'] }, { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } });
    withTelemetry(mesh, otel);
    const active: (string | undefined)[] = [];
    const value = await mesh.call(
      'db',
      async (_endpoint, { attempt }) => {
        active.push(otel.trace.getActiveSpan()?.spanContext().spanId);
        await new Promise((resolve) => setImmediate(resolve));
        active.push(otel.trace.getActiveSpan()?.spanContext().spanId);
        if (attempt === 1) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7001'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 7001 });
        return 'row';
      },
      { idempotent: true },
    );
    expect(value).toBe('row');
    const attempts = attemptSpans().sort((x, y) => Number(x.attributes['proxyless.attempt']) - Number(y.attributes['proxyless.attempt']));
    expect(attempts).toHaveLength(2);
    const ids = attempts.map((s) => s.spanContext().spanId);
    expect(active).toEqual([ids[0], ids[0], ids[1], ids[1]]);
    expect(attempts[0]!.name).toBe('db');
    expect(attempts[0]!.attributes).toMatchObject({ 'server.address': '127.0.0.1', 'error.type': 'ECONNREFUSED' });
    expect(attempts[0]!.attributes['http.request.method']).toBeUndefined();
    expect(callSpans()[0]!.attributes).toMatchObject({ 'proxyless.service': 'db', 'proxyless.outcome': 'success' });
  });

  it('a throwing tracer, span, propagator or meter breaks no call, and is reported on callback-error', async () => {
    const b = await backend(() => 200);
    servers.push(b.server);
    const boom = (): never => {
      throw new Error('otel boom');
    };
    const errors: MeshEvents['callback-error'][] = [];
    const cases = [
      { ...otel, trace: { ...otel.trace, getTracer: () => ({ startSpan: boom }) } },
      {
        ...otel,
        trace: { ...otel.trace, getTracer: () => ({ startSpan: () => ({ setAttribute: boom, setStatus: boom, end: boom, spanContext: () => otel.INVALID_SPAN_CONTEXT }) }) },
      },
      { ...otel, propagation: { inject: boom } },
      { ...otel, context: { active: () => otel.context.active(), with: boom } },
      {
        ...otel,
        metrics: {
          getMeter: () => ({
            createCounter: () => ({ add: boom }),
            createHistogram: () => ({ record: boom }),
            createObservableUpDownCounter: () => ({}),
            addBatchObservableCallback: () => {},
            removeBatchObservableCallback: boom,
          }),
        },
      },
    ];
    for (const api of cases) {
      const mesh = meshOf({ api: [b.address] });
      mesh.on('callback-error', (e) => void errors.push(e));
      const telemetry = withTelemetry(mesh, api as unknown as typeof otel);
      const res = await mesh.fetch('http://api/x');
      expect(res.status).toBe(200);
      await res.text();
      expect(await mesh.call('api', () => 'ok')).toBe('ok');
      telemetry.close();
    }
    expect(errors.length).toBeGreaterThanOrEqual(cases.length);
    expect(errors.every((e) => e.callback === 'telemetry' && (e.error as Error).message === 'otel boom')).toBe(true);
    expect(b.seen).toHaveLength(cases.length);
  });

  it('a meter that throws on the retry path is reported as telemetry, and one that fails withTelemetry leaves nothing behind', async () => {
    const b = await backend((n) => (n % 2 === 1 ? 503 : 200)); // each call: a 503, then its retry's 200
    servers.push(b.server);
    const boom = (): never => {
      throw new Error('otel boom');
    };
    let added = 0;
    const meter = (addBatchObservableCallback: () => void) => ({
      ...otel,
      metrics: {
        getMeter: () => ({
          createCounter: () => ({
            add: () => {
              added++;
              boom();
            },
          }),
          createHistogram: () => ({ record: () => {} }),
          createObservableUpDownCounter: () => ({}),
          addBatchObservableCallback,
          removeBatchObservableCallback: () => {},
        }),
      },
    });
    const retrying = { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } };
    const mesh = meshOf({ api: [b.address] }, retrying);
    const reported: MeshEvents['callback-error'][] = [];
    const listenerErrors: MeshEvents['listener-error'][] = [];
    mesh.on('callback-error', (e) => void reported.push(e)).on('listener-error', (e) => void listenerErrors.push(e));
    const telemetry = withTelemetry(mesh, meter(() => {}) as unknown as typeof otel);
    expect((await mesh.fetch('http://api/r')).status).toBe(200);
    telemetry.close();
    expect(listenerErrors).toEqual([]);
    // Two attempts, one call, one retry: each count threw, and each is on callback-error, none on listener-error.
    expect(added).toBe(4);
    expect(reported.filter((e) => e.callback === 'telemetry' && (e.error as Error).message === 'otel boom')).toHaveLength(4);
    // A meter that refuses the observable callback: withTelemetry throws, and no listener of it stays to count.
    const other = meshOf({ api: [b.address] }, retrying);
    expect(() => withTelemetry(other, meter(boom) as unknown as typeof otel)).toThrow('otel boom');
    added = 0;
    expect((await other.fetch('http://api/s')).status).toBe(200);
    expect(added).toBe(0);
    expect(() => withTelemetry(other, otel).close()).not.toThrow(); // and it may start again
  });

  it('close() stops it: no more spans or metrics, listeners off; one telemetry per mesh at a time; options checked', async () => {
    const b = await backend(() => 200);
    servers.push(b.server);
    const mesh = meshOf({ api: [b.address] });
    const telemetry = withTelemetry(mesh, otel);
    expect(() => withTelemetry(mesh, otel)).toThrow(/already has telemetry/);
    await (await mesh.fetch('http://api/1')).text();
    expect(spans()).toHaveLength(2);
    telemetry.close();
    telemetry.close(); // idempotent
    await (await mesh.fetch('http://api/2')).text();
    expect(spans()).toHaveLength(2);
    expect(b.seen[1]!.traceparent).toBeUndefined();
    const { resourceMetrics } = await reader.collect();
    expect(points(resourceMetrics, 'proxyless.client.calls').reduce((n, p) => n + p.value, 0)).toBe(1);
    // Another one may start once the first is closed; mesh.close() closes it too.
    const again = withTelemetry(mesh, otel);
    await mesh.close();
    // A closed mesh is refused, as its `on` is: telemetry there would never see a call.
    expect(() => withTelemetry(mesh, otel)).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
    again.close();

    expect(() => withTelemetry(mesh, {} as never)).toThrow(TypeError);
    expect(() => withTelemetry({} as never, otel)).toThrow(/mesh must be a mesh made by createMesh/);
  });
});

describe('withTelemetry: metrics', () => {
  it('mirror the calls made, and the Prometheus series', async () => {
    const b = await backend((n) => (n === 2 ? 503 : 200));
    servers.push(b.server);
    const mesh = meshOf({ api: [b.address] }, { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } });
    withTelemetry(mesh, otel);
    for (let i = 0; i < 4; i++) await (await mesh.fetch(`http://api/${i}`)).text(); // the 2nd is retried once
    const { resourceMetrics } = await reader.collect();
    const scope = resourceMetrics.scopeMetrics.find((s) => s.scope.name === 'proxyless')!;
    expect(scope.scope.version).toBe(PROXYLESS_VERSION);

    expect(points(resourceMetrics, 'proxyless.client.calls')).toEqual([
      { attributes: { 'proxyless.service': 'api', 'proxyless.outcome': 'success' }, value: 4 },
    ]);
    const attempts = points(resourceMetrics, 'proxyless.client.attempts').map((p) => [p.attributes['proxyless.outcome'], p.value]);
    expect(attempts.sort()).toEqual([['failure', 1], ['success', 4]]);
    expect(points(resourceMetrics, 'proxyless.client.retries')).toEqual([{ attributes: { 'proxyless.service': 'api' }, value: 1 }]);
    expect(points(resourceMetrics, 'proxyless.client.active_calls').map((p) => p.value)).toEqual([0]);
    expect(points(resourceMetrics, 'proxyless.client.active_attempts').map((p) => p.value)).toEqual([0]);

    expect(points(resourceMetrics, 'proxyless.client.call.duration')[0]!.value).toBe(4);
    expect(points(resourceMetrics, 'proxyless.client.attempt.duration')[0]!.value).toBe(5);

    const httpDuration = points(resourceMetrics, 'http.client.request.duration');
    const byStatus = Object.fromEntries(httpDuration.map((p) => [String(p.attributes['http.response.status_code']), p]));
    expect(byStatus['200']!.value).toBe(4);
    expect(byStatus['503']!.value).toBe(1);
    expect(byStatus['503']!.attributes).toEqual({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': Number(b.address.split(':')[1]),
      'http.response.status_code': 503,
      'error.type': '503',
    });
    expect(byStatus['200']!.boundaries).toEqual([...HTTP_DURATION_BUCKETS]); // the semconv's bucket advice

    // The Prometheus twins say the same.
    const text = mesh.metrics();
    expect(text).toMatch(/proxyless_requests_total\{[^}]*outcome="success"[^}]*\} 4/);
    expect(text).toMatch(/proxyless_retries_total\{[^}]*\} 1/);

    // In flight: a call whose function has not answered yet counts in both, for its service and endpoint.
    let release!: () => void;
    const pending = mesh.call('api', () => new Promise<string>((resolve) => (release = () => resolve('done'))));
    await vi.waitFor(() => expect(release).toBeTypeOf('function'), { timeout: 2_000, interval: 1 });
    const during = (await reader.collect()).resourceMetrics;
    expect(points(during, 'proxyless.client.active_calls')).toEqual([{ attributes: { 'proxyless.service': 'api' }, value: 1 }]);
    expect(points(during, 'proxyless.client.active_attempts')).toEqual([
      { attributes: { 'proxyless.service': 'api', 'proxyless.endpoint.id': b.address }, value: 1 },
    ]);
    release();
    expect(await pending).toBe('done');
    const after = (await reader.collect()).resourceMetrics;
    expect(points(after, 'proxyless.client.active_calls').map((p) => p.value)).toEqual([0]);
  });

  it('keeps the tracer and meter version equal to the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(PROXYLESS_VERSION).toBe(pkg.version);
  });
});
