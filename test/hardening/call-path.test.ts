import { describe, expect, it } from 'vitest';
import {
  CallFailedError,
  MeshError,
  staticRegistry,
  type Balancer,
  type EndpointState,
  type Mesh,
} from '../../src/index.js';
import { refusedAddress } from '../helpers/backends.js';
import { guardProcess, settleWithin, until } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

/**
 * Regression tests for the issue "Hardening: eighteen ways the mesh crashes...", call path, part 1:
 * user callbacks that throw (defect 1), the half-open probe (defect 2), the non-idempotent replay rule (defect 6).
 * The call-stop defects (7, 8, 9) are in call-path-stops.test.ts.
 */
const scope = testScope();

function idle(mesh: Mesh, service: string): { activeCalls: number; inflight: number[] } {
  const s = mesh.snapshot().services[service]!;
  return { activeCalls: s.activeCalls, inflight: s.endpoints.map((e) => e.inflight) };
}

describe('defect 1: user callbacks that throw never take the process down', () => {
  it('defect 1: a classify that throws (it forgets o.kind) on a refused connection: the call settles, its slot is freed', async () => {
    const guard = guardProcess();
    try {
      const refused = await refusedAddress();
      const mesh = scope.mesh({
        registry: staticRegistry({ api: [refused] }),
        defaults: {
          maxConcurrent: 1,
          retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1, budget: false },
          // The bug under test: on a refused connection the outcome is { kind: 'error' }, with no response.
          classify: (o) => ((o as { response: Response }).response.status >= 500 ? 'failure' : 'success'),
        },
      });
      const reported: { callback: string; service: string }[] = [];
      mesh.on('callback-error', (e) => reported.push(e));

      const first = await settleWithin(mesh.fetch('http://api/x'), 3_000);
      // The attempt counts as a failure (not retried on that account): the call rejects with CallFailedError.
      expect(first.status).toBe('rejected');
      const error = (first as { reason: unknown }).reason;
      expect(error).toBeInstanceOf(CallFailedError);
      expect((error as CallFailedError).code).toBe('ECALLFAILED');
      expect((error as CallFailedError).attempts).toHaveLength(1);
      expect(reported[0]).toMatchObject({ service: 'api', callback: 'classify' });
      expect(idle(mesh, 'api')).toEqual({ activeCalls: 0, inflight: [0] });

      // The bulkhead (maxConcurrent 1) is free: the next call is admitted, not refused with BulkheadFullError.
      const second = await settleWithin(mesh.fetch('http://api/x'), 3_000);
      expect((second as { reason: unknown }).reason).toBeInstanceOf(CallFailedError);
      expect(idle(mesh, 'api')).toEqual({ activeCalls: 0, inflight: [0] });
      expect(guard.errors).toEqual([]);
    } finally {
      guard.restore();
    }
  });

  /** A balancer whose first pick is fine and whose later picks (the hedge's) go wrong in `misbehave`. */
  function laterPicksGoWrong(misbehave: (states: readonly EndpointState[]) => EndpointState | undefined): Balancer {
    let picks = 0;
    return {
      name: 'bad',
      pick(states) {
        picks++;
        return picks === 1 ? states[0] : misbehave(states);
      },
    };
  }

  async function hedgeWith(balancer: Balancer): Promise<void> {
    const guard = guardProcess();
    try {
      const mesh = scope.mesh({
        registry: staticRegistry({ svc: ['127.0.0.1:1', '127.0.0.1:2'] }),
        defaults: { balancer, hedge: { delayMs: 1 }, breaker: false, outlier: false },
      });
      const reported: { callback: string }[] = [];
      mesh.on('callback-error', (e) => reported.push(e));
      let hedgeTimerRan = false;
      // The first attempt outlives the hedge delay, so the hedge timer fires and picks (nothing is dialled).
      const call = mesh.call(
        'svc',
        () =>
          new Promise<string>((resolve) =>
            setTimeout(() => {
              hedgeTimerRan = true;
              resolve('first');
            }, 40),
          ),
        { idempotent: true },
      );
      const settled = await settleWithin(call, 3_000);
      expect(hedgeTimerRan).toBe(true);
      expect(guard.errors).toEqual([]); // nothing escaped from the hedge timer
      expect(settled).toEqual({ status: 'fulfilled', value: 'first' });
      expect(reported).toHaveLength(1);
      expect(reported[0]).toMatchObject({ callback: 'balancer' });
      expect(idle(mesh, 'svc')).toEqual({ activeCalls: 0, inflight: [0, 0] });
    } finally {
      guard.restore();
    }
  }

  it("defect 1: a custom balancer whose pick throws on the hedge path: no uncaught exception, callback-error 'balancer'", async () => {
    await hedgeWith(
      laterPicksGoWrong(() => {
        throw new Error('x');
      }),
    );
  });

  it('defect 1: a custom balancer that answers a bogus object on the hedge path is refused the same way', async () => {
    await hedgeWith(laterPicksGoWrong(() => ({ id: 'not-an-endpoint' }) as unknown as EndpointState));
  });
});

describe('defect 2: a call made from a request listener while the endpoint is half-open', () => {
  it('defect 2: the outer call keeps the probe and settles with its real result; in-flight returns to 0', async () => {
    const mesh = scope.mesh({
      registry: staticRegistry({ svc: ['127.0.0.1:1'] }),
      defaults: {
        retry: false,
        outlier: false,
        breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 50 },
      },
    });
    let halfOpen = false;
    mesh.on('breaker-half-open', () => (halfOpen = true));
    await expect(
      mesh.call('svc', () => {
        throw new Error('down');
      }),
    ).rejects.toBeInstanceOf(CallFailedError);
    expect(mesh.snapshot().services.svc?.endpoints[0]?.breaker).toBe('open');
    await until(() => halfOpen, 3_000, 'breaker-half-open');

    let inner: Promise<string> | undefined;
    mesh.once('request', () => {
      inner = mesh.call('svc', async () => 'inner');
    });
    const outer = await settleWithin(mesh.call('svc', async () => 'outer'), 3_000, 'the outer call');
    expect(outer).toEqual({ status: 'fulfilled', value: 'outer' });
    expect(inner).toBeDefined();
    const nested = await settleWithin(inner!, 3_000, 'the inner call');
    if (nested.status === 'rejected') {
      // Refused for want of the probe: a MeshError of the mesh's own, never opossum's raw EOPENBREAKER.
      expect(nested.reason).toBeInstanceOf(MeshError);
      expect(typeof (nested.reason as MeshError).code).toBe('string');
      expect((nested.reason as MeshError).code).not.toBe('EOPENBREAKER');
    } else {
      expect(nested.value).toBe('inner');
    }
    expect(idle(mesh, 'svc')).toEqual({ activeCalls: 0, inflight: [0] });
    expect(mesh.snapshot().services.svc?.endpoints[0]?.breaker).toBe('closed'); // the outer probe closed it
  });
});

describe('defect 6: a non-idempotent mesh.call is replayed only when its own endpoint refused', () => {
  it('defect 6: fn wrote an order, then another connection (an audit service) was refused: the order is written once', async () => {
    const orders = await scope.backend((_req, res) => res.end('ordered'));
    const audit = await refusedAddress();
    const mesh = scope.mesh({
      registry: staticRegistry({ orders: [orders.address] }),
      defaults: { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1, budget: false }, breaker: false, outlier: false },
    });
    const call = mesh.call('orders', async (ep) => {
      const res = await fetch(`http://${ep.host}:${ep.port}/orders`, { method: 'POST', body: 'order-1' });
      await res.text();
      await fetch(`http://${audit}/audit`, { method: 'POST', body: 'order-1' }); // ECONNREFUSED, another port
      return 'done';
    });
    const error = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CallFailedError);
    expect(orders.seen.filter((r) => r.url === '/orders')).toHaveLength(1);
    expect((error as CallFailedError).attempts).toHaveLength(1);
  });

  /** Picks the first endpoint this call has not tried, in list order: the refused one goes first. */
  const inOrder: Balancer = {
    name: 'in-order',
    pick: (states, request) => states.find((s) => !request.tried.includes(s)),
  };

  it('defect 6 (guard): the endpoint itself refusing the connection IS retried for a non-idempotent call', async () => {
    const live = await scope.backend((_req, res) => res.end('ordered'));
    const refused = await refusedAddress();
    const mesh = scope.mesh({
      registry: staticRegistry({ orders: [refused, live.address] }),
      defaults: { balancer: inOrder, retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1, budget: false }, breaker: false, outlier: false },
    });
    const tried: string[] = [];
    const body = await mesh.call('orders', async (ep) => {
      tried.push(`${ep.host}:${ep.port}`);
      const res = await fetch(`http://${ep.host}:${ep.port}/orders`, { method: 'POST', body: 'order-1' });
      return res.text();
    });
    expect(body).toBe('ordered');
    expect(tried).toEqual([refused, live.address]);
    expect(live.seen).toHaveLength(1);
  });

  it("defect 6: the policy's unsent hook makes an error retried for a non-idempotent call (gRPC status 14)", async () => {
    const mesh = scope.mesh({
      registry: staticRegistry({ grpc: ['127.0.0.1:1', '127.0.0.1:2'] }),
      defaults: {
        balancer: inOrder,
        retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1, budget: false },
        breaker: false,
        outlier: false,
        unsent: (e) => (e as { code?: unknown }).code === 14,
      },
    });
    const attempts: number[] = [];
    const value = await mesh.call('grpc', async (_ep, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw Object.assign(new Error('14 UNAVAILABLE: failed to connect'), { code: 14 });
      return 'ok';
    });
    expect(value).toBe('ok');
    expect(attempts).toEqual([1, 2]);

    // Without the hook's word, the same error is not replayed.
    const other = await mesh
      .call('grpc', (_ep, ctx) => {
        attempts.push(ctx.attempt);
        throw Object.assign(new Error('13 INTERNAL'), { code: 13 });
      })
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(CallFailedError);
    expect((other as CallFailedError).attempts).toHaveLength(1);
  });
});
