import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiscoveryCache } from '../../src/discovery/cache.js';
import { consulRegistry, type ConsulRegistry } from '../../src/discovery/consul.js';
import { DiscoveryError } from '../../src/errors.js';
import { startConsulDouble, type ConsulDouble } from '../helpers/consul-double.js';
import { manualClock, recorder } from './fakes.js';

/**
 * 36 characters, as a Consul token (a UUID) has. Every 4 characters of it hold a '~', which nothing else in a
 * message, a stack or a file path does, so that finding any 4 of them in a text is a leak, never a coincidence.
 */
const TOKEN = 'k7~q3~z9~w2~x8~j4~v6~m1~r5~t0~p3~n8~';
const GRAMS = Array.from({ length: TOKEN.length - 3 }, (_, i) => TOKEN.slice(i, i + 4));

/** The pieces of the token (4 characters or more) found in `text`. */
function leaked(text: string): string[] {
  return GRAMS.filter((g) => text.includes(g));
}

/** Everything an error shows: message, stack, String(), and every own field, along the cause chain. */
function everything(error: unknown): string {
  const parts: string[] = [String(error)];
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    parts.push(e.message, e.stack ?? '', String(e), JSON.stringify(e, Object.getOwnPropertyNames(e)));
  }
  return parts.join('\n');
}

let consul: ConsulDouble;
let registry: ConsulRegistry;
beforeEach(async () => {
  consul = await startConsulDouble();
  registry = consulRegistry({ url: consul.url, env: {}, token: TOKEN, watch: false });
});
afterEach(async () => {
  registry.close();
  await consul.close();
});

/** One load through the cache, as the mesh does it: the rejection, and the discovery-error payload. */
async function load(): Promise<{ error: Error; payloads: string }> {
  const listener = recorder();
  const cache = new DiscoveryCache(registry, { refreshMs: 10_000, maxServices: 10, resolveTimeoutMs: 5_000, clock: manualClock() }, listener);
  const error = await cache.load('users').then(() => undefined, (e: unknown) => e);
  cache.close();
  if (!(error instanceof DiscoveryError)) throw new Error(`expected a DiscoveryError, got ${String(error)}`);
  // The mesh emits discovery-error as { service, error, stale }.
  const payloads = listener.errors.map((p) => `${JSON.stringify(p)}\n${everything(p.error)}`).join('\n');
  return { error, payloads };
}

async function expectNoLeak(): Promise<Error> {
  const { error, payloads } = await load();
  expect(consul.requests.at(-1)?.token).toBe(TOKEN); // the double had the token to echo
  expect(leaked(everything(error))).toEqual([]);
  expect(leaked(payloads)).toEqual([]);
  return error;
}

describe('the Consul token never reaches errors or events, whole or in part', () => {
  it('the test token is as long as a Consul token and every 4 characters of it hold a ~', () => {
    expect(TOKEN).toHaveLength(36);
    for (const g of GRAMS) expect(g).toContain('~');
  });

  it('defect 17: an error body echoing the token at every offset around the cut shows none of it', async () => {
    for (let offset = 0; offset <= 340; offset++) {
      consul.respondWith(500, (token) => `rpc error: ${'.'.repeat(offset)}${token} trailing words`);
      const error = await expectNoLeak();
      expect(error.message).toMatch(/Consul answered 500/);
    }
  });

  it('defect 17: nor a long error body of blanks whose read ends inside the token', async () => {
    // Only the start of an error body is read; blanks collapse, so a token cut there would move into view.
    for (let offset = 64 * 1024 - 40; offset <= 64 * 1024; offset += 3) {
      consul.respondWith(403, (token) => `${' '.repeat(offset)}${token}`);
      await expectNoLeak();
    }
  });

  it('defect 17: a 200 with invalid JSON echoing the token at every offset: no body text, no parser message', async () => {
    const shapes = [
      (pad: string, token: string) => `[${pad}${token}`, // unexpected token
      (pad: string, token: string) => `["${pad}${token}`, // unterminated string
      (pad: string, token: string) => `[{"Node": ${pad}${token}}]`,
      (pad: string, token: string) => `{"a":"${pad}${token}"} trailing`, // valid JSON, then garbage
    ];
    for (const shape of shapes) {
      for (let offset = 0; offset <= 90; offset++) {
        const body = shape('.'.repeat(offset), TOKEN);
        consul.respondWithGarbage(body);
        const error = await expectNoLeak();
        expect(error.message).toContain(`Consul answered with invalid JSON (${Buffer.byteLength(body)} bytes)`);
      }
    }
  });
});
