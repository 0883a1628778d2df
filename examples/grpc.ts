/**
 * gRPC through the mesh, with one grpc-js client per endpoint. The mesh picks the endpoint, bounds and retries
 * the call, ejects a dead server; each grpc-js client dials a single address (grpc-js's own balancing, between
 * the addresses of one target, is not used). `endpointClients` keeps one client per endpoint and closes it when
 * discovery drops the endpoint or the mesh closes.
 *
 * `npx tsx examples/grpc.ts` starts two grpc-js servers on 127.0.0.1, sends 20 calls through the mesh and prints
 * how many each server answered.
 *
 * What this relies on in grpc-js (1.14):
 * - A refused connection fails a call at once with UNAVAILABLE ("No connection established. Last error: Error:
 *   connect ECONNREFUSED ...") instead of waiting for the deadline, because `waitForReady` is off (the default).
 *   While a subchannel backs off between reconnects (1 s, growing to 120 s), calls fail that way at once too: the
 *   mesh then retries on the other endpoint, and its outlier detector ejects this one after a few failures.
 * - grpc-js's "transparent retry" replays an attempt that never started on a stream (and one refused with
 *   REFUSED_STREAM, once) on the same channel, so on the same endpoint: harmless, and not a retry across
 *   endpoints. It needs `grpc.enable_retries` left on (the default); no service config sets a retry policy, so
 *   grpc-js makes no other retries and the mesh is the only layer that retries (layers that both retry multiply).
 */
import {
  credentials,
  loadPackageDefinition,
  Server,
  ServerCredentials,
  status,
  type CallOptions,
  type ClientUnaryCall,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';
import { pathToFileURL } from 'node:url';
import {
  createMesh,
  endpointClients,
  staticRegistry,
  type CallOptions as MeshCallOptions,
  type Endpoint,
  type EndpointClients,
  type Mesh,
  type Policy,
  type StaticRegistry,
} from 'proxyless';

/**
 * The service, as protobuf.js JSON (no .proto file to ship or find at run time). As a .proto file it reads:
 *
 *   syntax = "proto3";
 *   package demo;
 *   service Users { rpc GetUser (GetUserRequest) returns (User); }
 *   message GetUserRequest { string id = 1; }
 *   message User { string id = 1; string server = 2; }
 */
const USERS_PROTO: Parameters<typeof fromJSON>[0] = {
  nested: {
    demo: {
      nested: {
        // `comment` only because protobuf.js's `IMethod` type requires one.
        Users: { methods: { GetUser: { requestType: 'GetUserRequest', responseType: 'User', comment: '' } } },
        GetUserRequest: { fields: { id: { type: 'string', id: 1 } } },
        User: { fields: { id: { type: 'string', id: 1 }, server: { type: 'string', id: 2 } } },
      },
    },
  },
};

export interface GetUserRequest {
  id: string;
}
export interface User {
  id: string;
  /** Which server answered (the demo's servers put their name here). */
  server: string;
}

/** The generated client, typed: grpc-js builds its methods at run time from the definition. */
export interface UsersClient {
  getUser(request: GetUserRequest, options: CallOptions, callback: (error: ServiceError | null, user?: User) => void): ClientUnaryCall;
  close(): void;
}

const demo = loadPackageDefinition(fromJSON(USERS_PROTO)).demo as GrpcObject;
/** The client constructor grpc-js generated; its `service` is the definition a server implements. */
export const UsersService = demo.Users as ServiceClientConstructor;

/** The attempt timeout: the policy's `attemptMs`, and read by `getUser` to give the gRPC call the same bound. */
export const ATTEMPT_MS = 1_000;
/** The whole call, retries and backoff included. */
export const TOTAL_MS = 3_000;

/**
 * Whether a grpc-js error proves that the request never left this process, so that even a call that is not
 * idempotent may be replayed on another endpoint. The policy's `unsent` hook: the mesh's own proof (an
 * `ECONNREFUSED` error for the endpoint's address) does not apply, because grpc-js reports a refused connection
 * as a status (numeric `code` 14), with the socket error only as text in `details`.
 *
 * grpc-js (1.14) wording, from its source:
 * - "No connection established. Last error: ..." (pick_first's picker, load-balancer-pick-first.js): the channel
 *   has no connection, the attempts to make one failed, and the call was failed before any stream was opened.
 *   Unsent. This is also what a call gets once a killed server's connection is gone and the reconnect is refused.
 * - "Channel closed before call started" (internal-channel.js): the client was closed (discovery dropped the
 *   endpoint) while the call waited for a connection. Unsent.
 * - "Connection dropped" (subchannel-call.js), or an ECONNRESET message: the connection was lost while the
 *   call's stream was open. The server may have received and run the request: NOT unsent, so a call that is
 *   not idempotent is not replayed. (A server stopped by grpc-js's forceShutdown() resets its streams with
 *   CANCEL first: the call in flight then ends CANCELLED "Call cancelled", code 1, not unsent either.)
 * Both unsent texts are made by grpc-js itself, with empty metadata; a status that came from a server carries
 * its response headers (at least `content-type`) in `metadata`. Requiring empty metadata keeps a server that
 * answers UNAVAILABLE with such a text (a proxy relaying its own connect failure, say) from being taken as
 * "never sent": it received the request.
 */
export function grpcUnsent(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const { code, details, metadata } = error as { code?: unknown; details?: unknown; metadata?: unknown };
  if (code !== status.UNAVAILABLE || typeof details !== 'string') return false;
  if (!details.startsWith('No connection established') && details !== 'Channel closed before call started') return false;
  const fromWire = metadata !== null && typeof metadata === 'object' && 'getMap' in metadata && typeof metadata.getMap === 'function'
    ? Object.keys(metadata.getMap() as object).length > 0
    : false;
  return !fromWire;
}

/** The service's policy: timeouts the call fn repeats in the gRPC deadline, and the `unsent` mapping. */
export const usersPolicy: Policy = {
  // Peak-EWMA (the default) sends nearly every call to the endpoint with the lowest latency so far; on a loopback
  // where both servers are equal, one of them takes almost all (19 of 20 in a run). Round-robin shows the split.
  balancer: 'round-robin',
  timeout: { attemptMs: ATTEMPT_MS, totalMs: TOTAL_MS },
  unsent: grpcUnsent,
};

export interface UsersServer {
  readonly name: string;
  readonly port: number;
  /** Calls this server answered. */
  readonly served: number;
  /** Calls received and not answered yet (with `delayMs`). */
  readonly inFlight: number;
  /**
   * Stops at once, as a crash would: grpc-js destroys each connection with NGHTTP2_CANCEL, so a call in flight
   * fails on the client with CANCELLED "Call cancelled" (sometimes UNAVAILABLE "Connection dropped"), and the
   * next ones with UNAVAILABLE "No connection established" once the reconnect is refused.
   */
  kill(): void;
  /** Graceful stop (calls in flight finish), forced after `graceMs` so it never hangs. */
  close(graceMs?: number): Promise<void>;
}

/**
 * A grpc-js Users server on 127.0.0.1 (a port the system picks), answering every GetUser with its own name,
 * after `delayMs` if given (so that a test can find calls in flight).
 */
export async function startUsersServer(name: string, { delayMs = 0 }: { delayMs?: number } = {}): Promise<UsersServer> {
  const server = new Server();
  let served = 0;
  const pending = new Set<NodeJS.Timeout>();
  server.addService(UsersService.service, {
    getUser(call: { request: GetUserRequest }, callback: (error: null, user: User) => void) {
      const answer = (): void => {
        served++;
        callback(null, { id: call.request.id, server: name });
      };
      if (delayMs <= 0) return answer();
      const timer = setTimeout(() => (pending.delete(timer), answer()), delayMs);
      pending.add(timer);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p)));
  });
  let stopped = false;
  const dropPending = (): void => {
    for (const timer of pending) clearTimeout(timer); // a dead server answers nothing more
    pending.clear();
  };
  return {
    name,
    port,
    get served() {
      return served;
    },
    get inFlight() {
      return pending.size;
    },
    kill() {
      stopped = true;
      dropPending();
      server.forceShutdown();
    },
    async close(graceMs = 2_000) {
      if (stopped) return;
      stopped = true;
      await new Promise<void>((resolve) => {
        // tryShutdown waits for calls in flight; a client that keeps a stream open would make it wait forever.
        const force = setTimeout(() => (dropPending(), server.forceShutdown(), resolve()), graceMs);
        server.tryShutdown(() => (clearTimeout(force), resolve()));
      });
    },
  };
}

/** A grpc-js client for one endpoint: one address, so one connection (a grpc-js subchannel). */
export function usersClient(endpoint: Endpoint): UsersClient {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return new UsersService(`${host}:${endpoint.port}`, credentials.createInsecure()) as unknown as UsersClient;
}

export interface UsersMesh {
  mesh: Mesh;
  registry: StaticRegistry;
  clients: EndpointClients<UsersClient>;
}

/**
 * A mesh whose 'users' service lists these ports on 127.0.0.1, and the clients for its endpoints. `create` and
 * `close` default to {@link usersClient} and `client.close()`; a test wraps them to count. `policy` overrides
 * keys of {@link usersPolicy} (not `timeout`: `getUser` repeats `ATTEMPT_MS` in the gRPC deadline).
 */
export function usersMesh(
  ports: readonly number[],
  options: {
    create?: (endpoint: Endpoint) => UsersClient;
    close?: (client: UsersClient) => void | Promise<void>;
    policy?: Omit<Policy, 'timeout'>;
    random?: () => number;
  } = {},
): UsersMesh {
  const registry = staticRegistry({ users: ports.map((port) => `127.0.0.1:${port}`) });
  const mesh = createMesh({
    registry,
    services: { users: { ...usersPolicy, ...options.policy } },
    ...(options.random ? { random: options.random } : {}),
  });
  const clients = endpointClients(mesh, 'users', options.create ?? usersClient, options.close ?? ((client) => client.close()));
  return { mesh, registry, clients };
}

/**
 * GetUser through the mesh. Idempotent (a read) unless told otherwise: then any failure may be retried on the
 * other endpoint; a call that is not idempotent is replayed only after an error `grpcUnsent` accepts.
 */
export function getUser(
  mesh: Mesh,
  clients: EndpointClients<UsersClient>,
  id: string,
  options: Pick<MeshCallOptions, 'idempotent' | 'signal'> = { idempotent: true },
): Promise<User> {
  return mesh.call(
    'users',
    (endpoint, ctx) => {
      // The attempt's own deadline, not only the call's: with the call's alone, a hung first attempt would keep
      // its RPC (and the server's work) running after the mesh gave up on it and retried elsewhere. grpc-js
      // sends it to the server as `grpc-timeout`, so the server can stop too.
      const deadline = Math.min(ctx.deadline, Date.now() + ATTEMPT_MS);
      // Reading ctx.signal makes the mesh create an AbortSignal for this attempt. Worth it: a call aborted by its
      // caller, by close() or by a hedge that won would otherwise keep its RPC running until the deadline.
      const signal = ctx.signal;
      return new Promise<User>((resolve, reject) => {
        if (signal.aborted) return reject(signal.reason);
        let call: ClientUnaryCall | undefined;
        const onAbort = (): void => call?.cancel(); // grpc-js then fails the call with CANCELLED; the mesh already moved on
        signal.addEventListener('abort', onAbort, { once: true });
        call = clients.get(endpoint).getUser({ id }, { deadline }, (error, user) => {
          signal.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve(user as User);
        });
      });
    },
    options,
  );
}

// Run directly: two servers, 20 calls, the share each server answered.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const servers = await Promise.all([startUsersServer('users-a'), startUsersServer('users-b')]);
  const { mesh, clients } = usersMesh(servers.map((s) => s.port));
  try {
    const answered = new Map<string, number>();
    // A fixed count, one at a time: the mesh's timeouts bound each call, so the loop is bounded in time too.
    for (let i = 0; i < 20; i++) {
      const user = await getUser(mesh, clients, `user-${i}`);
      answered.set(user.server, (answered.get(user.server) ?? 0) + 1);
    }
    for (const s of servers) console.log(`${s.name} (127.0.0.1:${s.port}) answered ${answered.get(s.name) ?? 0} of 20 calls`);
    console.log(`${clients.size} clients open, one per endpoint`);
  } finally {
    await mesh.close(); // closes the clients too
    await Promise.all(servers.map((s) => s.close()));
  }
}
