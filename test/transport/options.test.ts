import { Agent } from 'undici';
import { describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { FETCHES, startServer } from './loopback.js';

// Per-call options are checked like mesh options: a misspelt key would otherwise be dropped without a word
// (`idempotant: true` silently leaves a POST unretried). fetch's own init keys must keep passing through.

async function withMesh(fetch: typeof globalThis.fetch, run: (mesh: Mesh, seen: () => number) => Promise<void>): Promise<void> {
  const s = await startServer((_req, res) => res.end('ok'));
  const mesh = createMesh({ registry: staticRegistry({ svc: [s.address] }), fetch });
  try {
    await run(mesh, () => s.seen.length);
  } finally {
    await mesh.close();
  }
}

async function typeErrorOf(promise: Promise<unknown>): Promise<TypeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TypeError);
  return error as TypeError;
}

describe('unknown per-call options', () => {
  it("mesh.fetch rejects { idempotant: true } with a TypeError naming it, and sends nothing", async () => {
    await withMesh(globalThis.fetch, async (mesh, seen) => {
      const error = await typeErrorOf(mesh.fetch('http://svc/', { idempotant: true } as RequestInit));
      expect(error.message).toContain('idempotant');
      expect(seen()).toBe(0);
    });
  });

  it("mesh.call rejects { hashkey: 'x' } with a TypeError naming it, and never runs fn", async () => {
    await withMesh(globalThis.fetch, async (mesh) => {
      let ran = 0;
      const error = await typeErrorOf(mesh.call('svc', () => ++ran, { hashkey: 'x' } as never));
      expect(error.message).toContain('hashkey');
      expect(ran).toBe(0);
    });
  });

  it('the scoped client checks too', async () => {
    await withMesh(globalThis.fetch, async (mesh) => {
      const error = await typeErrorOf(mesh.service('svc').fetch('/', { retires: 1 } as RequestInit));
      expect(error.message).toContain('retires');
    });
  });

  it("mesh.call's own keys are accepted", async () => {
    await withMesh(globalThis.fetch, async (mesh) => {
      const value = await mesh.call('svc', (ep) => ep.port, {
        signal: new AbortController().signal,
        hashKey: 'k',
        idempotent: true,
        timeout: { attemptMs: 1_000, totalMs: 2_000 },
        retry: { retries: 1 },
        hedge: false,
      });
      expect(typeof value).toBe('number');
    });
  });
});

describe.each(FETCHES)("fetch's own init keys on $name", ({ name, fetch }) => {
  it('are all accepted and the request goes out', async () => {
    await withMesh(fetch, async (mesh, seen) => {
      const agent = new Agent();
      let dispatched = 0;
      // Counts what goes through the dispatcher: proof that undici's fetch got it, not just that it was tolerated.
      const counting = agent.compose((dispatch) => (opts, handler) => {
        dispatched++;
        return dispatch(opts, handler);
      });
      try {
        const init = {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: 'hi',
          redirect: 'follow',
          keepalive: false,
          signal: new AbortController().signal,
          cache: 'no-store',
          credentials: 'same-origin',
          integrity: '',
          mode: 'cors',
          referrer: '',
          referrerPolicy: 'no-referrer',
          priority: 'auto',
          window: null,
          duplex: 'half',
          // npm undici's own dispatcher goes to undici's fetch only (Node's bundled undici is another copy);
          // the key is present either way, which is what the check looks at.
          dispatcher: name === 'undici fetch' ? counting : undefined,
          // the mesh's own keys, alongside
          idempotent: true,
          retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 },
        } as RequestInit;
        const res = await mesh.fetch('http://svc/all-keys', init);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('ok');
        expect(seen()).toBe(1);
        expect(dispatched).toBe(name === 'undici fetch' ? 1 : 0);
      } finally {
        await agent.close();
      }
    });
  });
});
