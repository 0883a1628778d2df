import { describe, expect, it, vi } from 'vitest';
import { createMesh, staticRegistry } from '../src/index.js';

describe('events', () => {
  it('carry service, endpoint, attempt, durationMs and error, in order', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:9', '127.0.0.1:10'] }),
      defaults: { retry: { minDelayMs: 1 } },
    });
    const log: string[] = [];
    mesh.on('request', (e) => log.push(`request ${e.service} #${e.attempt}`));
    mesh.on('failure', (e) => log.push(`failure #${e.attempt} ${e.error.message} ${typeof e.durationMs}`));
    mesh.on('retry', (e) => log.push(`retry after #${e.attempt} ${e.error.message}`));
    mesh.on('success', (e) => log.push(`success #${e.attempt} ${e.endpoint.host}`));
    let n = 0;
    await mesh.call('api', () => {
      if (++n === 1) throw new Error('first fails');
      return 'ok';
    }, { idempotent: true });
    expect(log).toEqual([
      'request api #1',
      'failure #1 first fails number',
      'retry after #1 first fails',
      'request api #2',
      'success #2 127.0.0.1',
    ]);
    await mesh.close();
  });

  it('a throwing listener is reported and never changes the outcome', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:9'] }) });
    const reported: unknown[] = [];
    mesh.on('listener-error', (e) => reported.push(e.error));
    mesh.on('request', () => {
      throw new Error('bad listener');
    });
    mesh.on('success', async () => {
      throw new Error('bad async listener');
    });
    const other = vi.fn();
    mesh.on('request', other);
    await expect(mesh.call('api', () => 42)).resolves.toBe(42);
    await Promise.resolve();
    expect(other).toHaveBeenCalledTimes(1);
    expect(reported.map((e) => (e as Error).message)).toEqual(['bad listener', 'bad async listener']);
    await mesh.close();
  });

  it('off() removes a listener', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:9'] }) });
    const listener = vi.fn();
    mesh.on('request', listener);
    await mesh.call('api', () => 1);
    mesh.off('request', listener);
    await mesh.call('api', () => 1);
    expect(listener).toHaveBeenCalledTimes(1);
    await mesh.close();
  });

  it('after close(), calls reject with MeshClosedError and calls in flight are aborted', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:9'] }) });
    let signal: AbortSignal | undefined;
    let started!: () => void;
    const attemptStarted = new Promise<void>((r) => (started = r));
    const inflight = mesh.call('api', (_ep, ctx) => {
      signal = ctx.signal;
      started();
      return new Promise(() => {});
    });
    await attemptStarted;
    await mesh.close();
    await expect(inflight).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(signal?.aborted).toBe(true);
    await expect(mesh.call('api', () => 1)).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});
