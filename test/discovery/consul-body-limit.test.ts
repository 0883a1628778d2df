import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscoveryCache } from '../../src/discovery/cache.js';
import { consulRegistry, type ConsulRegistry } from '../../src/discovery/consul.js';
import { registerService } from '../../src/discovery/consul-register.js';
import { DiscoveryError } from '../../src/errors.js';
import { waitUntil } from '../helpers/consul-double.js';
import { manualClock, recorder } from './fakes.js';

const MiB = 1024 * 1024;
/** Where the servers below stop on their own, so that a client that never stops reading still ends the test. */
const SERVER_LIMIT = 64 * MiB;
const CHUNK = Buffer.alloc(64 * 1024, 0x20); // JSON whitespace

interface Streamer {
  readonly url: string;
  /** Body bytes the server handed to the socket, and whether the client went away. */
  readonly sent: () => number;
  readonly closed: () => boolean;
  close(): Promise<void>;
}

/**
 * A Consul stand-in that answers every request with a body it streams as fast as the client reads it, up
 * to SERVER_LIMIT: `declared` sets a Content-Length (a lie, for the 2 GB case), else the body is chunked.
 */
async function streamer(declared?: number): Promise<Streamer> {
  let sent = 0;
  let closed = false;
  const server = http.createServer((req, res) => {
    res.on('close', () => (closed = true));
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'X-Consul-Index': '7',
      ...(declared === undefined ? {} : { 'Content-Length': String(declared) }),
    });
    const pump = (): void => {
      while (!res.destroyed && sent < SERVER_LIMIT) {
        const chunk = sent === 0 ? Buffer.concat([Buffer.from('['), CHUNK.subarray(1)]) : CHUNK;
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end(']');
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => sent,
    closed: () => closed,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => undefined, (error: unknown) => error);
  if (!(e instanceof Error)) throw new Error('expected a rejection');
  return e;
}

describe('discovery.maxBodyBytes: Consul answers are read up to a cap', () => {
  it('defect 15: a Consul answer that declares 2 GB is refused from its headers with a DiscoveryError naming maxBodyBytes', async () => {
    const server = await streamer(2 * 1024 * MiB);
    cleanups.push(() => server.close());
    const registry: ConsulRegistry = consulRegistry({ url: server.url, env: {}, timeoutMs: 3_000 });
    cleanups.push(() => registry.close());
    // Through the cache, as the mesh loads it: this is what reaches a caller.
    const listener = recorder();
    const cache = new DiscoveryCache(registry, { refreshMs: 10_000, maxServices: 10, resolveTimeoutMs: 5_000, clock: manualClock() }, listener);
    cleanups.push(() => cache.close());

    const started = performance.now();
    const error = await failure(cache.load('users'));
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toMatch(/larger than consulRegistry\.maxBodyBytes \(33554432 bytes\).*Content-Length 2147483648/);
    expect(listener.errors.map((e) => e.error)).toEqual([error]);
    expect(performance.now() - started).toBeLessThan(2_000); // not after the 3 s timeout
    await waitUntil(() => expect(server.closed()).toBe(true)); // the connection was given up, not drained
    expect(server.sent()).toBeLessThan(16 * MiB);
  });

  it('defect 15: a chunked answer that runs past maxBodyBytes is cancelled once the cap is passed', async () => {
    const server = await streamer();
    cleanups.push(() => server.close());
    const registry = consulRegistry({ url: server.url, env: {}, timeoutMs: 5_000, maxBodyBytes: MiB });
    cleanups.push(() => registry.close());

    const error = await failure(registry.resolve('users', { signal: new AbortController().signal }));
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toMatch(/GET \/v1\/health\/service\/users\?passing=true is larger than consulRegistry\.maxBodyBytes \(1048576 bytes\)/);
    await waitUntil(() => expect(server.closed()).toBe(true));
    // The cap plus what the sockets buffer on loopback: nowhere near the 64 MiB the server would send.
    expect(server.sent()).toBeLessThan(16 * MiB);
  });

  it('defect 15: watches (blocking queries) are capped the same way', async () => {
    const server = await streamer();
    cleanups.push(() => server.close());
    const registry = consulRegistry({ url: server.url, env: {}, maxBodyBytes: MiB, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    cleanups.push(() => registry.close());
    const errors: Error[] = [];
    cleanups.push(registry.watch!('users', () => {}, (e) => errors.push(e)));
    await waitUntil(() => expect(errors.length).toBeGreaterThan(0), 5_000);
    expect(errors[0]!.message).toMatch(/larger than consulRegistry\.maxBodyBytes/);
    expect(server.sent()).toBeLessThan(16 * MiB);
  });

  it('defect 15: an answer within the cap is read whole; registerService has the option too', async () => {
    const body = JSON.stringify([
      {
        Node: { Node: 'n1', Address: '127.0.0.1', Datacenter: 'dc1' },
        Service: { ID: 'u1', Service: 'users', Address: '127.0.0.1', Port: 8081, Tags: [], Meta: {} },
        Checks: [{ Status: 'passing' }],
      },
    ]);
    const registry = consulRegistry({ env: {}, maxBodyBytes: body.length, fetch: async () => new Response(body) });
    cleanups.push(() => registry.close());
    expect((await registry.resolve('users', { signal: new AbortController().signal })).map((e) => e.id)).toEqual(['u1@n1']);

    const tooSmall = consulRegistry({ env: {}, maxBodyBytes: body.length - 1, fetch: async () => new Response(body) });
    cleanups.push(() => tooSmall.close());
    expect((await failure(tooSmall.resolve('users', { signal: new AbortController().signal }))).message).toMatch(/maxBodyBytes/);

    const big = `${' '.repeat(2_000)}{}`;
    const register = registerService({
      consul: { env: {}, maxBodyBytes: 1_000, fetch: async () => new Response(big) },
      service: { name: 'users', address: '127.0.0.1', port: 8081 },
    });
    expect((await failure(register)).message).toMatch(/larger than registerService\.consul\.maxBodyBytes \(1000 bytes\)/);
  });

  it('defect 15: maxBodyBytes is validated', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '1', 2 ** 40]) {
      expect(() => consulRegistry({ env: {}, maxBodyBytes: bad as number })).toThrow(/consulRegistry\.maxBodyBytes must be an integer/);
    }
  });
});
