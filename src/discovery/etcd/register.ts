import { authority, hostProblem } from '../../endpoint/endpoint.js';
import { serviceNameProblem } from '../../util/service-name.js';
import { EtcdError, EtcdGateway, GRPC, type GatewayRequest } from './gateway.js';
import { checkKeys, CONNECTION_KEYS, duration, etcdConnection, type EtcdConnectionOptions } from './options.js';
import { encodeValue, type EndpointValue } from './records.js';
import { b64, parseGrant, parseKeepAlive } from './wire.js';

/** Options of {@link registerEtcd}. */
export interface RegisterEtcdOptions {
  /** Where etcd is, and the key prefix (the registry's). Default: `http://127.0.0.1:2379`, `/services/`. */
  etcd?: EtcdConnectionOptions | undefined;
  /** The instance to register. */
  service: {
    /** The logical service name, as callers resolve it. */
    name: string;
    /** The `<id>` of the key `<prefix><name>/<id>`, and the endpoint's id. Default `<address>:<port>`. */
    id?: string | undefined;
    /** The address other services dial (not 0.0.0.0). @example '10.0.1.21' */
    address: string;
    /** The port other services dial. */
    port: number;
    /** Relative share of traffic, > 0. Default 1. */
    weight?: number | undefined;
    /** Locality, for zone-aware balancing. */
    zone?: string | undefined;
    tags?: readonly string[] | undefined;
    meta?: Readonly<Record<string, string>> | undefined;
  };
  /**
   * The lease's time to live: a registrant that dies without `close()` disappears this long after its last
   * keepalive. etcd counts in whole seconds, so it is rounded up; etcd may raise it to its minimum (2 s with
   * the default election timeout). Default 10000, at least 1000.
   */
  ttlMs?: number | undefined;
  /** How often the lease is kept alive. Default a third of the TTL etcd granted, so two keepalives can fail. */
  keepAliveMs?: number | undefined;
  /** Hears keepalive failures (they are retried) and re-registrations. */
  onError?: ((error: Error) => void) | undefined;
}

/** A live registration in etcd. */
export interface EtcdRegistration {
  /** The endpoint's id, the last part of the key. */
  readonly id: string;
  /** The key written: `<prefix><name>/<id>`. */
  readonly key: string;
  /** The lease holding the key, as etcd's decimal int64 (it changes if the lease was lost and granted again). */
  readonly leaseId: string;
  /** The TTL etcd granted, in seconds. */
  readonly ttlSeconds: number;
  /**
   * Stops the keepalives and revokes the lease, which deletes the key at once. A keepalive in flight is
   * aborted; a re-registration in flight is awaited, so that the lease revoked is the one holding the key.
   * Rejects with the {@link EtcdError} when the revoke fails (the key then stays until its TTL runs out). Safe
   * to call more than once: every call gets the same promise.
   */
  close(): Promise<void>;
}

const AT = 'registerEtcd';
const KNOWN = ['etcd', 'service', 'ttlMs', 'keepAliveMs', 'onError'];
const SERVICE_KEYS = ['name', 'id', 'address', 'port', 'weight', 'zone', 'tags', 'meta'];
/** A failed keepalive is retried after this, doubling, but never later than the next regular one. */
const RETRY_BASE_MS = 250;

/**
 * Registers this process in etcd: grants a lease (`/v3/lease/grant`), puts `<prefix><name>/<id>` with the
 * endpoint's JSON under it (`/v3/kv/put`), and keeps the lease alive (`/v3/lease/keepalive`, every third of
 * the TTL). A keepalive that finds the lease gone (etcd answers it with no TTL: it expired while this process
 * could not reach etcd) grants a new lease and puts the key again. `close()` revokes the lease, so the key
 * goes at once; a process killed without it is removed by etcd when the TTL runs out.
 *
 * @example
 * const registration = await registerEtcd({ service: { name: 'users', address: '10.0.1.21', port: 8080 }, ttlMs: 10_000 });
 * // ... on shutdown
 * await registration.close();
 */
export async function registerEtcd(options: RegisterEtcdOptions): Promise<EtcdRegistration> {
  const plan = validate(options);
  const gateway = new EtcdGateway(plan.conn);
  const name = plan.name;
  const call = (path: string, body: unknown, signal?: AbortSignal): Promise<Record<string, unknown>> =>
    gateway.call({ path, body, service: name, signal } satisfies GatewayRequest);
  const shapeError = (error: unknown): EtcdError =>
    error instanceof EtcdError ? error : new EtcdError(name, error instanceof Error ? error.message : String(error), { cause: error });

  /** A new lease, and the key put under it; a lease whose put failed is revoked (best effort). */
  const register = async (signal?: AbortSignal): Promise<{ id: string; ttlSeconds: number }> => {
    let lease: { id: string; ttlSeconds: number };
    try {
      lease = parseGrant(await call('/v3/lease/grant', { TTL: String(plan.ttlSeconds) }, signal));
    } catch (error) {
      throw shapeError(error);
    }
    try {
      await call('/v3/kv/put', { key: b64(plan.key), value: b64(plan.value), lease: lease.id }, signal);
    } catch (error) {
      await revoke(call, lease.id).catch(() => {});
      throw error;
    }
    return lease;
  };

  let lease = await register();
  let state: { kind: 'running'; timer?: NodeJS.Timeout; keepalive?: AbortController } | { kind: 'closed'; done: Promise<void> } = { kind: 'running' };
  /** The beat in flight (a keepalive, maybe a re-registration): close() waits for it. */
  let inflight: Promise<void> | undefined;
  let failures = 0;
  const interval = (): number => plan.keepAliveMs ?? (lease.ttlSeconds * 1000) / 3;

  const beat = async (): Promise<void> => {
    if (state.kind !== 'running') return;
    // Only the keepalive itself is aborted by close(): a grant or put in flight may already be applied by etcd,
    // so it is awaited instead, and close() revokes the lease it leaves in `lease`.
    const keepalive = new AbortController();
    state.keepalive = keepalive;
    try {
      let ttl: number;
      try {
        ttl = parseKeepAlive(await call('/v3/lease/keepalive', { ID: lease.id }, keepalive.signal));
      } catch (error) {
        throw shapeError(error);
      } finally {
        if (state.kind === 'running' && state.keepalive === keepalive) state.keepalive = undefined;
      }
      if (ttl <= 0) {
        // The lease is gone (expired while etcd was out of reach, or revoked by someone): start over.
        const lost = lease.id;
        lease = await register();
        if (state.kind !== 'running') return; // close() revokes this lease once this beat is over
        report(options.onError, new EtcdError(name, `${AT}: lease ${lost} of ${plan.key} was gone; registered again under lease ${lease.id}`));
      }
      failures = 0;
    } catch (error) {
      if (keepalive.signal.aborted || state.kind !== 'running') return;
      failures++;
      report(options.onError, error);
    }
    schedule();
  };
  const schedule = (): void => {
    if (state.kind !== 'running') return;
    const delay = failures === 0 ? interval() : Math.min(interval(), RETRY_BASE_MS * 2 ** Math.min(failures - 1, 20));
    // unref: keepalives alone do not keep a process alive (its server does).
    state.timer = setTimeout(() => {
      const running = beat();
      inflight = running;
      void running.finally(() => {
        if (inflight === running) inflight = undefined;
      });
    }, delay).unref();
  };
  schedule();

  const close = (): Promise<void> => {
    if (state.kind === 'closed') return state.done;
    if (state.timer) clearTimeout(state.timer);
    state.keepalive?.abort();
    const pending = inflight;
    // After the beat in flight: the lease in hand then (a re-registration may have replaced it) is the one to revoke.
    const done = (async () => {
      await pending?.catch(() => {});
      await revoke(call, lease.id);
    })();
    state = { kind: 'closed', done };
    return done;
  };
  return {
    id: plan.id,
    key: plan.key,
    get leaseId() {
      return lease.id;
    },
    get ttlSeconds() {
      return lease.ttlSeconds;
    },
    close,
  };
}

/** Revokes a lease; one etcd no longer has (gRPC NotFound, HTTP 404) has already taken its keys with it. */
async function revoke(call: (path: string, body: unknown) => Promise<unknown>, id: string): Promise<void> {
  try {
    await call('/v3/lease/revoke', { ID: id });
  } catch (error) {
    if (!(error instanceof EtcdError && (error.grpcCode === GRPC.NOT_FOUND || error.status === 404))) throw error;
  }
}

function report(onError: ((error: Error) => void) | undefined, error: unknown): void {
  try {
    onError?.(error instanceof Error ? error : new Error(String(error)));
  } catch {
    // a throwing error handler must not stop the keepalives
  }
}

interface Plan {
  readonly conn: ReturnType<typeof etcdConnection>;
  readonly name: string;
  readonly id: string;
  readonly key: string;
  readonly value: string;
  readonly ttlSeconds: number;
  readonly keepAliveMs: number | undefined;
}

function validate(o: RegisterEtcdOptions): Plan {
  checkKeys(o, KNOWN, AT, `${AT}(options)`);
  if (o.etcd !== undefined) checkKeys(o.etcd, CONNECTION_KEYS, `${AT}.etcd`);
  const conn = etcdConnection(o.etcd ?? {}, `${AT}.etcd`);
  const s = o.service;
  checkKeys(s, SERVICE_KEYS, `${AT}.service`);
  const problem = serviceNameProblem(s.name);
  if (problem) throw new TypeError(`${AT}.service.name is not a valid service name: ${problem}`);
  // The rule discovery applies: an address it would refuse would register fine and then never be called.
  const badAddress = hostProblem(s.address);
  if (badAddress) throw new TypeError(`${AT}.service.address must be a host name or IP address: ${badAddress}`);
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new TypeError(`${AT}.service.port must be an integer from 1 to 65535`);
  const id = s.id ?? authority(s.address, s.port);
  if (typeof id !== 'string' || id === '' || id.length > 512 || /[\x00-\x1f\x7f]/.test(id)) {
    throw new TypeError(`${AT}.service.id must be a non-empty string of at most 512 characters without control characters`);
  }
  if (s.weight !== undefined && !(typeof s.weight === 'number' && Number.isFinite(s.weight) && s.weight > 0)) {
    throw new TypeError(`${AT}.service.weight must be a finite number > 0`);
  }
  if (s.zone !== undefined && typeof s.zone !== 'string') throw new TypeError(`${AT}.service.zone must be a string`);
  if (s.tags !== undefined && !(Array.isArray(s.tags) && s.tags.every((t) => typeof t === 'string'))) {
    throw new TypeError(`${AT}.service.tags must be an array of strings`);
  }
  if (s.meta !== undefined && !(s.meta !== null && typeof s.meta === 'object' && !Array.isArray(s.meta) && Object.values(s.meta).every((v) => typeof v === 'string'))) {
    throw new TypeError(`${AT}.service.meta must map strings to strings`);
  }
  const ttlMs = duration(o.ttlMs, `${AT}.ttlMs`, 10_000, 1_000);
  const ttlSeconds = Math.ceil(ttlMs / 1000);
  const keepAliveMs = o.keepAliveMs === undefined ? undefined : duration(o.keepAliveMs, `${AT}.keepAliveMs`, 0, 10);
  if (keepAliveMs !== undefined && keepAliveMs >= ttlSeconds * 1000) throw new TypeError(`${AT}.keepAliveMs must be less than ttlMs`);
  if (o.onError !== undefined && typeof o.onError !== 'function') throw new TypeError(`${AT}.onError must be a function`);
  const value: EndpointValue = { host: s.address, port: s.port };
  if (s.weight !== undefined) value.weight = s.weight;
  if (s.zone !== undefined) value.zone = s.zone;
  if (s.tags !== undefined) value.tags = [...s.tags];
  if (s.meta !== undefined) value.meta = { ...s.meta };
  return { conn, name: s.name, id, key: `${conn.prefix}${s.name}/${id}`, value: encodeValue(value), ttlSeconds, keepAliveMs };
}
