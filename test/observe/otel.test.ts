// OpenTelemetry: trace-context propagation on mesh.fetch (withTraceContext) through the real @opentelemetry/api,
// and examples/otel.ts turning the mesh's events into OTel metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as otel from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installMinimalTracing, instrumentMesh } from '../../examples/otel.js';
import { createMesh, staticRegistry, withTraceContext } from '../../src/index.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const inSpan = <T>(fn: () => Promise<T>): Promise<T> =>
  otel.context.with(otel.trace.setSpan(otel.context.active(), otel.trace.wrapSpanContext({ traceId: TRACE, spanId: SPAN, traceFlags: 1 })), fn);

let server: http.Server;
let address: string;
const seen: { url: string; traceparent: string | undefined; other: string | undefined }[] = [];
let failFirst = 0;

beforeAll(async () => {
  installMinimalTracing();
  server = http.createServer((req, res) => {
    seen.push({ url: req.url!, traceparent: req.headers.traceparent as string | undefined, other: req.headers['x-other'] as string | undefined });
    if (failFirst > 0) {
      failFirst--;
      res.writeHead(503).end('again');
    } else {
      res.end('ok');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('withTraceContext', () => {
  it('propagates the active trace context on every attempt, retries included, and nothing without a span', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: [address] }),
      defaults: { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } },
      fetch: withTraceContext(otel),
    });
    try {
      seen.length = 0;
      failFirst = 1;
      const res = await inSpan(() => mesh.fetch('http://api/traced', { headers: { 'x-other': 'kept' } }));
      expect(await res.text()).toBe('ok');
      expect(seen).toHaveLength(2); // the 503 and its retry
      for (const s of seen) {
        expect(s.traceparent).toBe(`00-${TRACE}-${SPAN}-01`);
        expect(s.other).toBe('kept');
      }
      seen.length = 0;
      await (await mesh.fetch('http://api/untraced')).text();
      expect(seen[0]!.traceparent).toBeUndefined();
      // A Request's own headers survive; a traceparent the caller set is not overwritten.
      seen.length = 0;
      const own = '00-11111111111111111111111111111111-2222222222222222-01';
      await inSpan(async () => (await mesh.fetch(new Request('http://api/req', { headers: { 'x-other': 'req' } }))).text());
      await inSpan(async () => (await mesh.fetch('http://api/own', { headers: { traceparent: own } })).text());
      expect(seen.map((s) => [s.url, s.traceparent, s.other])).toEqual([
        ['/req', `00-${TRACE}-${SPAN}-01`, 'req'],
        ['/own', own, undefined],
      ]);
    } finally {
      await mesh.close();
    }
  });

  it('refuses something that is not the OpenTelemetry API', () => {
    expect(() => withTraceContext({} as never)).toThrow(TypeError);
  });
});

describe('examples/otel.ts instrumentMesh', () => {
  it('turns events into counters and a histogram, and snapshot values into gauges', async () => {
    const recorded: { name: string; kind: string; value: number; attrs: otel.Attributes | undefined }[] = [];
    const callbacks: otel.BatchObservableCallback[] = [];
    const instrument = (name: string, kind: string) => ({
      name,
      add: (value: number, attrs?: otel.Attributes) => void recorded.push({ name, kind, value, attrs }),
      record: (value: number, attrs?: otel.Attributes) => void recorded.push({ name, kind, value, attrs }),
    });
    const meter = {
      createCounter: (name: string) => instrument(name, 'counter'),
      createHistogram: (name: string) => instrument(name, 'histogram'),
      createObservableGauge: (name: string) => instrument(name, 'gauge'),
      addBatchObservableCallback: (cb: otel.BatchObservableCallback) => void callbacks.push(cb),
      removeBatchObservableCallback: (cb: otel.BatchObservableCallback) => void callbacks.splice(callbacks.indexOf(cb), 1),
    } as unknown as otel.Meter;

    const mesh = createMesh({ registry: staticRegistry({ api: [address] }), defaults: { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } } });
    const stop = instrumentMesh(mesh, meter);
    try {
      failFirst = 1;
      await (await mesh.fetch('http://api/x')).text();
      const names = recorded.map((r) => `${r.name}:${String(r.attrs?.['proxyless.outcome'] ?? '')}`);
      expect(names).toEqual([
        'proxyless.attempts:failure',
        'proxyless.attempt.duration:failure',
        'proxyless.retries:',
        'proxyless.attempts:success',
        'proxyless.attempt.duration:success',
      ]);
      expect(recorded[0]!.attrs).toMatchObject({ 'proxyless.service': 'api', 'server.address': '127.0.0.1', 'http.response.status_code': 503 });

      const observed: { name: string; value: number }[] = [];
      callbacks[0]!({ observe: (o: unknown, value: number) => void observed.push({ name: (o as { name: string }).name, value }) } as never);
      expect(observed.map((o) => o.name).sort()).toEqual(['proxyless.endpoint.in_flight', 'proxyless.endpoint.latency_ewma', 'proxyless.retry_budget.balance']);

      stop();
      expect(callbacks).toHaveLength(0);
      recorded.length = 0;
      await (await mesh.fetch('http://api/y')).text();
      expect(recorded).toEqual([]); // listeners removed
    } finally {
      await mesh.close();
    }
  });
});
