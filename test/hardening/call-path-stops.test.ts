import { describe, expect, it } from 'vitest';
import {
  CallFailedError,
  CircuitOpenError,
  MeshClosedError,
  staticRegistry,
  type Endpoint,
  type Registry,
} from '../../src/index.js';
import { settleWithin } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

/**
 * Regression tests for the issue "Hardening: eighteen ways the mesh crashes...", call path, part 2: how a call
 * ends when a retry finds nothing to pick (defect 7), an abort that lands at a hand-over (defect 8), and
 * `close()` from a `request` listener (defect 9).
 */
const scope = testScope();

describe('defect 7: a retry that finds every breaker open ends the call with its last failure', () => {
  const policy = {
    breaker: { volumeThreshold: 2, errorThresholdPercentage: 50 },
    outlier: false as const,
    retry: { retries: 3, minDelayMs: 1, maxDelayMs: 1, budget: false as const },
  };

  it('defect 7: fetch PUT got 503, 503, then the breaker opened: it resolves with the last 503, body readable', async () => {
    const backend = await scope.backend((_req, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    const mesh = scope.mesh({ registry: staticRegistry({ api: [backend.address] }), defaults: policy });
    const res = await mesh.fetch('http://api/item', { method: 'PUT', body: 'v' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('busy');
    expect(backend.seen).toHaveLength(2); // the third try found the breaker open: nothing more was sent
    expect(mesh.snapshot().services.api?.endpoints[0]?.breaker).toBe('open');
  });

  it('defect 7: mesh.call (a throwing fn): CallFailedError with both attempts, not CircuitOpenError', async () => {
    const mesh = scope.mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), defaults: policy });
    let runs = 0;
    const error = await mesh
      .call(
        'api',
        () => {
          runs++;
          throw new Error('boom');
        },
        { idempotent: true },
      )
      .catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(CircuitOpenError);
    expect(error).toBeInstanceOf(CallFailedError);
    expect((error as CallFailedError).code).toBe('ECALLFAILED');
    expect((error as CallFailedError).attempts).toHaveLength(2);
    expect(runs).toBe(2);
  });
});

/** Resolves after `n` microtask turns (0: at once, in the current turn). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await undefined;
}

const ENDPOINT: Endpoint = { id: 'e', host: '127.0.0.1', port: 1, weight: 1, tags: [], meta: {} };

/*
 * Defect 8. Where exactly the abort lands relative to the hand-over depends on how many microtask turns each
 * side takes, so each test sweeps the abort over a range of turns after the hand-over. Whatever the turn, once
 * the caller's signal has aborted, fn must not start, and the call rejects with the signal's reason.
 */
describe('defect 8: an abort that lands right at a hand-over still stops the call', () => {
  it('defect 8: an abort just after discovery answers: fn never runs, the call rejects with the reason', async () => {
    for (let n = 0; n <= 12; n++) {
      const controller = new AbortController();
      const reason = new Error(`aborted ${n} turns after discovery answered`);
      const registry: Registry = {
        resolve: () => {
          const answer = Promise.resolve([ENDPOINT]);
          void answer.then(() => turns(n)).then(() => controller.abort(reason));
          return answer;
        },
      };
      const mesh = scope.mesh({ registry, defaults: { retry: false } });
      let ranAfterAbort = false;
      const call = mesh.call(
        'svc',
        () => {
          if (controller.signal.aborted) ranAfterAbort = true;
          return new Promise<string>((resolve) => setTimeout(() => resolve('ran'), 5));
        },
        { signal: controller.signal },
      );
      const settled = await settleWithin(call, 2_000, `the call (abort after ${n} turns)`);
      expect({ n, ranAfterAbort }).toEqual({ n, ranAfterAbort: false });
      expect({ n, settled }).toEqual({ n, settled: { status: 'rejected', reason } });
      await mesh.close();
    }
  });

  it('defect 8: an abort just as a bulkhead slot is handed over: the waiting call never runs', async () => {
    for (let n = 0; n <= 16; n++) {
      const mesh = scope.mesh({
        registry: staticRegistry({ svc: ['127.0.0.1:1'] }),
        defaults: { maxConcurrent: 1, maxQueued: 1, retry: false },
      });
      await mesh.warmup(['svc']);
      const controller = new AbortController();
      const reason = new Error(`aborted ${n} turns after A returned`);
      let release!: () => void;
      const a = mesh.call('svc', async () => {
        await new Promise<void>((resolve) => (release = resolve));
        // A returns now; its slot goes to B a few turns later. Abort B somewhere around that hand-over.
        void turns(n).then(() => controller.abort(reason));
        return 'a';
      });
      let bRan = false;
      const b = mesh.call(
        'svc',
        () => {
          if (controller.signal.aborted) bRan = true;
          return new Promise<string>((resolve) => setTimeout(() => resolve('b'), 5));
        },
        { signal: controller.signal },
      );
      await new Promise((resolve) => setImmediate(resolve)); // B is queued behind A
      release();
      await expect(a).resolves.toBe('a');
      const settled = await settleWithin(b, 2_000, `call B (abort after ${n} turns)`);
      expect({ n, bRan }).toEqual({ n, bRan: false });
      expect({ n, settled }).toEqual({ n, settled: { status: 'rejected', reason } });
      expect(mesh.snapshot().services.svc?.activeCalls).toBe(0);
      await mesh.close();
    }
  });
});

describe('defect 9: close() from a request listener', () => {
  it('defect 9: the attempt does not go out: the backend sees nothing and the call rejects with MeshClosedError', async () => {
    const backend = await scope.backend();
    const mesh = scope.mesh({ registry: staticRegistry({ api: [backend.address] }) });
    mesh.once('request', () => void mesh.close());
    const settled = await settleWithin(mesh.fetch('http://api/x'), 3_000);
    expect(settled.status).toBe('rejected');
    const error = (settled as { reason: unknown }).reason;
    expect(error).toBeInstanceOf(MeshClosedError);
    expect((error as MeshClosedError).code).toBe('ECLOSED');
    expect(backend.seen).toHaveLength(0);
  });

  it('defect 9: for mesh.call, fn is never invoked', async () => {
    const mesh = scope.mesh({ registry: staticRegistry({ svc: ['127.0.0.1:1'] }) });
    mesh.once('request', () => void mesh.close());
    let invoked = false;
    const error = await mesh
      .call('svc', async () => {
        invoked = true;
        return 'sent';
      })
      .catch((e: unknown) => e);
    expect(invoked).toBe(false);
    expect(error).toBeInstanceOf(MeshClosedError);
    expect((error as MeshClosedError).code).toBe('ECLOSED');
  });
});
