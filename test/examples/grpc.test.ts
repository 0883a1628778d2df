import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  getUser,
  grpcUnsent,
  startUsersServer,
  usersClient,
  usersMesh,
  UsersService,
  type UsersClient,
  type UsersServer,
} from '../../examples/grpc.js';
import { CallFailedError, type Endpoint, type MeshEvents } from '../../src/index.js';
import { runScript } from '../helpers/run-script.js';

// Everything a test starts is stopped after it, last started first (meshes, which close their clients, before
// the servers), so a failed assertion leaves no server, mesh or client behind.
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function usersServer(name: string, options?: { delayMs?: number }): Promise<UsersServer> {
  const server = await startUsersServer(name, options);
  cleanups.push(() => server.kill());
  return server;
}

/** A users mesh whose clients are counted: every client made, and whether it was closed. */
function countedMesh(ports: readonly number[], options: Omit<Parameters<typeof usersMesh>[1], 'create' | 'close'> = {}) {
  const made: { endpoint: Endpoint; client: UsersClient; closed: boolean }[] = [];
  const m = usersMesh(ports, {
    ...options,
    create(endpoint) {
      const client = usersClient(endpoint);
      made.push({ endpoint, client, closed: false });
      return client;
    },
    close(client) {
      const entry = made.find((m) => m.client === client);
      if (entry) entry.closed = true;
      client.close();
    },
  });
  cleanups.push(() => m.mesh.close());
  return { ...m, made, madeFor: (port: number) => made.filter((m) => m.endpoint.port === port) };
}

/** Polls `check` until it holds, failing after `limitMs` (no fixed sleep: it returns as soon as it holds). */
async function until(check: () => boolean, what: string, limitMs = 5_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port with nothing listening: a server's, once it is shut down. */
async function deadPort(): Promise<number> {
  const server = await startUsersServer('dead');
  server.kill();
  return server.port;
}

/**
 * A bare HTTP/2 server that reads each request to its end (the gRPC request was sent and received whole), then
 * destroys the connection without answering: the client's call fails with UNAVAILABLE after sending.
 */
async function startDropper(): Promise<{ port: number; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.on('data', () => {});
    stream.on('end', () => {
      received++;
      stream.session?.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = async (): Promise<void> => {
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  cleanups.push(close);
  return { port: (server.address() as AddressInfo).port, received: () => received, close };
}

/** Call options without `idempotent`: mesh.call's default, a call that is not idempotent (getUser's default is). */
const NOT_IDEMPOTENT = {};

/** The grpc-js error a failed call carries (the mesh rejects with a CallFailedError whose cause it is). */
function grpcError(error: unknown): ServiceError {
  expect(error).toBeInstanceOf(CallFailedError);
  return (error as CallFailedError).cause as ServiceError;
}

describe('examples/grpc.ts: gRPC with one client per endpoint', () => {
  it('spreads calls over both servers', async () => {
    const [a, b] = await Promise.all([usersServer('users-a'), usersServer('users-b')]);
    const { mesh, clients } = countedMesh([a.port, b.port]);
    const answered = { 'users-a': 0, 'users-b': 0 } as Record<string, number>;
    for (let i = 0; i < 40; i++) answered[(await getUser(mesh, clients, `user-${i}`)).server]!++;
    expect(a.served).toBeGreaterThan(0);
    expect(b.served).toBeGreaterThan(0);
    expect(answered).toEqual({ 'users-a': a.served, 'users-b': b.served });
    expect(a.served + b.served).toBe(40); // no retries on a healthy pair
  });

  it('makes exactly one client per endpoint, however many calls', async () => {
    const [a, b] = await Promise.all([usersServer('users-a'), usersServer('users-b')]);
    const { mesh, clients, made } = countedMesh([a.port, b.port]);
    // A few calls at once too: concurrent first uses of an endpoint must not make a second client.
    await Promise.all(Array.from({ length: 10 }, (_, i) => getUser(mesh, clients, `user-${i}`)));
    for (let i = 0; i < 30; i++) await getUser(mesh, clients, `user-${i}`);
    expect(made).toHaveLength(2);
    expect(clients.size).toBe(2);
    expect(made.map((m) => m.endpoint.port).sort()).toEqual([a.port, b.port].sort());
  });

  it("closes a dropped endpoint's client; later calls reach only the endpoints left", async () => {
    const [a, b] = await Promise.all([usersServer('users-a'), usersServer('users-b')]);
    const { mesh, clients, registry, madeFor } = countedMesh([a.port, b.port]);
    for (let i = 0; i < 10; i++) await getUser(mesh, clients, `user-${i}`);
    expect(madeFor(b.port)).toHaveLength(1);

    registry.set('users', [`127.0.0.1:${a.port}`]);
    await until(() => madeFor(b.port)[0]!.closed, "b's client closed");
    expect(clients.size).toBe(1);
    expect(madeFor(a.port)[0]!.closed).toBe(false);

    const servedByB = b.served;
    const answers = new Set<string>();
    for (let i = 0; i < 10; i++) answers.add((await getUser(mesh, clients, `user-${i}`)).server);
    expect(answers).toEqual(new Set(['users-a']));
    expect(b.served).toBe(servedByB);
    expect(madeFor(b.port)).toHaveLength(1); // no new client for the endpoint that left
  });

  it('idempotent: no call fails when a server dies mid-run', async () => {
    // Answers take 5 ms, so that calls are in flight on b when it dies.
    const [a, b] = await Promise.all([usersServer('users-a', { delayMs: 5 }), usersServer('users-b', { delayMs: 5 })]);
    const { mesh, clients } = countedMesh([a.port, b.port]);
    const failures: MeshEvents['failure'][] = [];
    mesh.on('failure', (f) => failures.push(f));

    // 200 calls from 4 workers; b is killed when the 50th is due, at a moment it holds a call; bounded in count
    // and, should the mesh stall, in time.
    const total = 200;
    const killAt = 50;
    const limit = Date.now() + 10_000;
    let next = 0;
    let done = 0;
    let killed = false;
    const errors: unknown[] = [];
    const afterKill: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < total && Date.now() < limit) {
        const i = next++;
        if (i === killAt) {
          await until(() => b.inFlight > 0, 'a call in flight on b');
          b.kill();
          killed = true;
        }
        const startedAfterKill = killed;
        try {
          const user = await getUser(mesh, clients, `user-${i}`);
          if (startedAfterKill) afterKill.push(user.server);
        } catch (error) {
          errors.push(error);
        }
        done++;
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));

    expect(errors).toEqual([]);
    expect(done).toBe(total); // all of them within the time limit
    // Calls that started while the 50th waited for b to hold one count as before the kill: most did not.
    expect(afterKill.length).toBeGreaterThan(100);
    expect(new Set(afterKill)).toEqual(new Set(['users-a']));
    // The kill was felt: the call b held failed mid-call, later picks of b failed to connect; all retried on a.
    // grpc-js's forceShutdown() destroys each session with NGHTTP2_CANCEL, so the call in flight usually ends
    // CANCELLED "Call cancelled", not UNAVAILABLE "Connection dropped" (which the loss of the socket gives).
    const onB = failures.filter((f) => f.endpoint.port === b.port).map((f) => f.error as ServiceError);
    expect(onB.some((e) => e.details === 'Call cancelled' || e.details === 'Connection dropped')).toBe(true);
    expect(onB.some((e) => e.details.startsWith('No connection established'))).toBe(true);
    expect(failures.every((f) => f.endpoint.port === b.port)).toBe(true);
  });

  describe('unsent: UNAVAILABLE before a connection is made', () => {
    it('a call that is not idempotent, first sent to a dead endpoint, succeeds on the live one', async () => {
      const dead = await deadPort();
      const live = await usersServer('users-live');
      // Round-robin from the list's start: first attempts alternate dead, live, dead, ...
      const { mesh, clients } = countedMesh([dead, live.port], { random: () => 0 });
      const failures: MeshEvents['failure'][] = [];
      const retries: MeshEvents['retry'][] = [];
      mesh.on('failure', (f) => failures.push(f));
      mesh.on('retry', (r) => retries.push(r));

      for (let i = 0; i < 6; i++) {
        expect(await getUser(mesh, clients, `user-${i}`, NOT_IDEMPOTENT)).toMatchObject({ server: 'users-live' });
      }
      const onDead = failures.filter((f) => f.endpoint.port === dead);
      expect(onDead.filter((f) => f.attempt === 1).length).toBeGreaterThan(0); // a first pick was the dead one
      expect(failures).toEqual(onDead);
      expect(retries).toHaveLength(failures.length);
      for (const f of onDead) {
        // How grpc-js reports a refused connection: a status, not the socket error (which is only text here).
        expect(f.error).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringMatching(/^No connection established\. Last error: .*ECONNREFUSED/) });
        expect(grpcUnsent(f.error)).toBe(true);
      }
      expect(live.served).toBe(6);
    });

    it('without the mapping, the same call fails: the mesh cannot read a gRPC status as "never sent"', async () => {
      const dead = await deadPort();
      const live = await usersServer('users-live');
      const { mesh, clients } = countedMesh([dead, live.port], { random: () => 0, policy: { unsent: undefined } });
      const results = await Promise.allSettled([0, 1].map(async (i) => getUser(mesh, clients, `user-${i}`, NOT_IDEMPOTENT)));
      const rejected = results.filter((r) => r.status === 'rejected');
      expect(rejected).toHaveLength(1); // the call whose first pick was the dead endpoint, not replayed
      const error = (rejected[0] as PromiseRejectedResult).reason as CallFailedError;
      expect(error.attempts).toHaveLength(1);
      expect(grpcError(error).code).toBe(status.UNAVAILABLE);
    });

    it('an UNAVAILABLE after the request was sent (connection dropped mid-call) is not unsent: not replayed', async () => {
      const dropper = await startDropper();
      const { mesh, clients } = countedMesh([dropper.port]);
      const error = await getUser(mesh, clients, 'user-1', NOT_IDEMPOTENT).catch((e: unknown) => e);
      const cause = grpcError(error);
      expect(cause).toMatchObject({ code: status.UNAVAILABLE, details: 'Connection dropped' });
      expect(grpcUnsent(cause)).toBe(false);
      expect((error as CallFailedError).attempts).toHaveLength(1);
      expect(dropper.received()).toBe(1); // the server got the request whole, once

      // The same failure on an idempotent call is retried (on the same endpoint: it is the only one).
      await getUser(mesh, clients, 'user-2').catch(() => {});
      expect(dropper.received()).toBe(1 + 3);
    });

    it('an UNAVAILABLE a server sends, whatever its text, is not unsent', async () => {
      const server = new Server();
      let served = 0;
      server.addService(UsersService.service, {
        getUser(_call: unknown, callback: (error: Partial<ServiceError>) => void) {
          served++;
          callback({ code: status.UNAVAILABLE, details: 'No connection established' });
        },
      });
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
      );
      cleanups.push(() => server.forceShutdown());
      const { mesh, clients } = countedMesh([port]);
      const error = await getUser(mesh, clients, 'user-1', NOT_IDEMPOTENT).catch((e: unknown) => e);
      expect(grpcError(error)).toMatchObject({ code: status.UNAVAILABLE, details: 'No connection established' });
      expect(grpcUnsent(grpcError(error))).toBe(false);
      expect(served).toBe(1);
    });

    it('the mapping on other shapes: other codes, other texts, non-errors', () => {
      expect(grpcUnsent({ code: status.UNAVAILABLE, details: 'Channel closed before call started' })).toBe(true);
      expect(grpcUnsent({ code: status.UNAVAILABLE, details: 'Connection dropped' })).toBe(false);
      expect(grpcUnsent({ code: status.DEADLINE_EXCEEDED, details: 'No connection established' })).toBe(false);
      expect(grpcUnsent(new Error('No connection established'))).toBe(false);
      expect(grpcUnsent(undefined)).toBe(false);
      expect(grpcUnsent('14 UNAVAILABLE: No connection established')).toBe(false);
    });
  });

  it("closes every endpoint's client when the mesh closes", async () => {
    const [a, b] = await Promise.all([usersServer('users-a'), usersServer('users-b')]);
    const { mesh, clients, made } = countedMesh([a.port, b.port]);
    for (let i = 0; i < 6; i++) await getUser(mesh, clients, `user-${i}`);
    expect(made).toHaveLength(2);
    await mesh.close();
    expect(made.map((m) => m.closed)).toEqual([true, true]);
    expect(clients.size).toBe(0);
  });

  it('runs on its own (npx tsx examples/grpc.ts) and exits', async () => {
    const { code, out } = await runScript('examples/grpc.ts');
    expect(out).toMatch(/^users-a \(127\.0\.0\.1:\d+\) answered (\d+) of 20 calls\nusers-b \(127\.0\.0\.1:\d+\) answered (\d+) of 20 calls\n2 clients open, one per endpoint\n$/);
    const counts = [...out.matchAll(/answered (\d+) of 20/g)].map((m) => Number(m[1]));
    expect(counts[0]! + counts[1]!).toBe(20);
    expect(code).toBe(0);
  });
});
