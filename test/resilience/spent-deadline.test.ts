import { describe, expect, it } from 'vitest';
import { Call } from '../../src/call/call.js';
import { createMesh, TimeoutError, type Fallback, type Registry } from '../../src/index.js';
import { toEndpoint } from '../../src/endpoint/endpoint.js';
import { meshCore } from '../../src/mesh-core.js';
import { callTransport } from '../../src/transport/call.js';
import { parseExposition, value } from '../observe/exposition.js';

/** A registry that counts its resolves: a spent deadline must not reach discovery. */
function counting(): { registry: Registry; resolves: () => number } {
  let n = 0;
  return {
    registry: { resolve: async () => (n++, [toEndpoint('127.0.0.1:1', 'test')]) },
    resolves: () => n,
  };
}

/** Runs a call whose settings say its deadline is spent (`totalMs` ≤ 0), as a per-call `deadline` in the past makes them. */
function spentCall(mesh: ReturnType<typeof createMesh>, fallback?: Fallback): { run: Promise<unknown>; sent: () => number } {
  const core = meshCore(mesh, 'test');
  const target = core.service('api').plan.whole;
  let sent = 0;
  const settings = { ...target.plainSettings, totalMs: -250, fallback };
  const call = new Call(core.env, target, settings, callTransport, async () => (sent++, 'sent'));
  return { run: target.stack.run(call), sent: () => sent };
}

describe('a spent deadline fails fast', () => {
  it('with TimeoutError (total, 0) before the bulkhead: no discovery, no backend, counted as a timed-out call', async () => {
    const { registry, resolves } = counting();
    const mesh = createMesh({ registry, services: { api: { maxConcurrent: 1 } } });
    const { run, sent } = spentCall(mesh);
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).scope).toBe('total');
    expect((error as TimeoutError).timeoutMs).toBe(0);
    expect(sent()).toBe(0);
    expect(resolves()).toBe(0);
    const snap = mesh.snapshot().services.api!;
    expect(snap.activeCalls).toBe(0);
    expect(value(parseExposition(mesh.metrics()), 'proxyless_requests_total', { service: 'api', outcome: 'timeout' })).toBe(1);
    await mesh.close();
  });

  it('and its fallback answers', async () => {
    const { registry } = counting();
    const mesh = createMesh({ registry });
    const seen: unknown[] = [];
    const { run, sent } = spentCall(mesh, (error) => (seen.push(error), 'late'));
    expect(await run).toBe('late');
    expect(seen[0]).toBeInstanceOf(TimeoutError);
    expect(sent()).toBe(0);
    await mesh.close();
  });

  it('through a per-call deadline in the past, on mesh.call and mesh.fetch', async () => {
    const { registry, resolves } = counting();
    const mesh = createMesh({ registry });
    let sent = 0;
    const error = await mesh.call('api', async () => (sent++, 'x'), { deadline: Date.now() - 1_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(sent).toBe(0);
    expect(resolves()).toBe(0);
    let fetched = 0;
    const viaFetch = createMesh({ registry, fetch: async () => (fetched++, new Response('x')) });
    const late = await viaFetch.fetch('http://api/', { deadline: Date.now() - 1, fallback: () => new Response('fallback') });
    expect(await late.text()).toBe('fallback');
    expect(fetched).toBe(0);
    expect(resolves()).toBe(0);
    await Promise.all([mesh.close(), viaFetch.close()]);
  });
});
