import { constants as osConstants } from 'node:os';
import { hostProblem } from '../endpoint/endpoint.js';
import { serviceNameProblem } from '../util/service-name.js';
import { CONNECTION_KEYS, consulConnection, goDuration, type ConsulConnectionOptions } from './consul-config.js';
import { consulFetch, ConsulError } from './consul-http.js';

/** A TTL check: this process reports "passing" every `heartbeatMs` (default a third of the TTL). */
export interface TtlCheck {
  /** Consul marks the instance critical when no heartbeat came for this long, in ms. */
  ttlMs: number;
  /** Shown in Consul's UI. @example 'app heartbeat' */
  notes?: string | undefined;
}

/** An HTTP check: Consul itself polls the URL. Passed through to Consul as is. */
export interface HttpCheck {
  /** @example 'http://127.0.0.1:8080/health' */
  http: string;
  /** How often Consul polls, in ms. */
  intervalMs: number;
  /** How long one poll may take, in ms. Default: Consul's (10 s). */
  timeoutMs?: number | undefined;
  /** @example 'HEAD' */
  method?: string | undefined;
  /** Headers Consul sends with each poll. */
  header?: Readonly<Record<string, readonly string[]>> | undefined;
  /** Poll an HTTPS URL without verifying its certificate. */
  tlsSkipVerify?: boolean | undefined;
}

/** Options of {@link registerService}. */
export interface RegisterServiceOptions {
  /** The agent to register with; fields fall back to `CONSUL_HTTP_*`. Default: from the environment. */
  consul?: ConsulConnectionOptions | undefined;
  /** The instance to register. */
  service: {
    /** The logical service name, as callers resolve it. */
    name: string;
    /** Unique on the agent. Default `<name>-<address>-<port>`, so a restart replaces its old entry. */
    id?: string | undefined;
    /** The address other services dial (not 0.0.0.0). @example '10.0.1.21' */
    address: string;
    /** The port other services dial. */
    port: number;
    /** Consul tags (a `consulRegistry({ tag })` filters on one). */
    tags?: readonly string[] | undefined;
    /** Consul service metadata (a zone key, a version, ...). */
    meta?: Readonly<Record<string, string>> | undefined;
    /** Relative share when passing, and when a check warns. Default { passing: 1, warning: 1 }. */
    weights?: {
      /** Weight while the check passes. */
      passing: number;
      /** Weight while the check warns. Default 1. */
      warning?: number | undefined;
    } | undefined;
  };
  /** Health check; without one the instance counts as passing while its node does. */
  check?: TtlCheck | HttpCheck | undefined;
  /** Consul removes the instance after its check was critical this long (Consul's minimum is 1 minute). */
  deregisterCriticalAfterMs?: number | undefined;
  /**
   * Deregister when the process receives one of these signals. The signal is then raised again once no
   * other listener is left, so Node's default (exit) still happens; this module never calls process.exit.
   * @example ['SIGTERM', 'SIGINT']
   */
  deregisterOn?: readonly NodeJS.Signals[] | undefined;
  /** TTL checks: how often to report passing. Default `ttlMs / 3`, so two heartbeats can fail before expiry. */
  heartbeatMs?: number | undefined;
  /** Hears heartbeat failures (they are retried). Errors carry no token. */
  onError?: ((error: Error) => void) | undefined;
}

/** A live registration. */
export interface Registration {
  /** The service instance id on the agent. */
  readonly id: string;
  /** The check's id (`service:<id>`), if a check was registered. */
  readonly checkId: string | undefined;
  /** Stops the heartbeat, removes the signal listeners, and deregisters. Safe to call more than once. */
  close(): Promise<void>;
}

const KNOWN = new Set(['consul', 'service', 'check', 'deregisterCriticalAfterMs', 'deregisterOn', 'heartbeatMs', 'onError']);
const AT = 'registerService';
/** Retry of a failed heartbeat: doubling from 500 ms, never later than the next regular beat. */
const RETRY_BASE_MS = 500;

/**
 * Registers this process with the local Consul agent (`PUT /v1/agent/service/register`), keeps a TTL check
 * passing (`PUT /v1/agent/check/pass/service:<id>` every `ttlMs / 3`), and deregisters on `close()`. A heartbeat
 * that fails is retried; one that finds the check gone (the agent lost its state, or reaped the instance)
 * registers again. Consul's 400s reject with a {@link ConsulError} quoting Consul's text.
 *
 * @example
 * const registration = await registerService({
 *   service: { name: 'users', address: '10.0.1.21', port: 8080, tags: ['v2'] },
 *   check: { ttlMs: 15_000 },
 *   deregisterCriticalAfterMs: 60_000,
 *   deregisterOn: ['SIGTERM', 'SIGINT'],
 * });
 * // ... on shutdown
 * await registration.close();
 */
export async function registerService(options: RegisterServiceOptions): Promise<Registration> {
  const plan = validate(options);
  const conn = consulConnection(options.consul ?? {}, `${AT}.consul`);
  const { id, name, payload } = plan;
  const checkId = options.check === undefined ? undefined : `service:${id}`;
  const put = (path: string, body?: unknown, signal?: AbortSignal): Promise<unknown> =>
    consulFetch(conn, { method: 'PUT', path, body, signal, service: name });
  const register = (signal?: AbortSignal): Promise<unknown> => put('/v1/agent/service/register', payload, signal);
  const pass = (signal?: AbortSignal): Promise<unknown> => put(`/v1/agent/check/pass/${encodeURIComponent(checkId!)}`, undefined, signal);

  await register();
  const ttl = options.check !== undefined && 'ttlMs' in options.check;
  if (ttl) {
    try {
      await pass();
    } catch (error) {
      await deregister(put, id).catch(() => {});
      throw error;
    }
  }

  let state: { kind: 'running'; timer?: NodeJS.Timeout; inflight?: AbortController } | { kind: 'closed'; done: Promise<void> } = {
    kind: 'running',
  };
  let failures = 0;

  const beat = async (): Promise<void> => {
    if (state.kind !== 'running') return;
    const inflight = new AbortController();
    state.inflight = inflight;
    try {
      try {
        await pass(inflight.signal);
      } catch (error) {
        // 404 "Unknown check ID": the agent forgot us (restart without state, or reaped): register again.
        if (!(error instanceof ConsulError && error.status === 404)) throw error;
        await register(inflight.signal);
        await pass(inflight.signal);
      }
      failures = 0;
    } catch (error) {
      if (inflight.signal.aborted || state.kind !== 'running') return;
      failures++;
      report(options.onError, error);
    } finally {
      if (state.kind === 'running' && state.inflight === inflight) state.inflight = undefined;
    }
    schedule();
  };
  const schedule = (): void => {
    if (state.kind !== 'running') return;
    const delay = failures === 0 ? plan.heartbeatMs : Math.min(plan.heartbeatMs, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 20));
    // unref: a heartbeat alone does not keep a process alive (its server does).
    state.timer = setTimeout(() => void beat(), delay).unref();
  };
  if (ttl) schedule();

  const signals = plan.signals;
  const onSignal = (signal: NodeJS.Signals): void => {
    void close()
      .catch((error: unknown) => report(options.onError, error))
      .finally(() => {
        // Ours was the only listener, so Node's default (exit 128 + n) was suppressed: let it happen now.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
  };
  for (const signal of signals) process.once(signal, onSignal);

  const close = (): Promise<void> => {
    if (state.kind === 'closed') return state.done;
    if (state.timer) clearTimeout(state.timer);
    state.inflight?.abort();
    for (const signal of signals) process.removeListener(signal, onSignal);
    const done = deregister(put, id);
    state = { kind: 'closed', done };
    return done;
  };
  return { id, checkId, close };
}

/** Deregisters; an instance Consul no longer knows (404) is already gone, which is what was asked. */
async function deregister(put: (path: string) => Promise<unknown>, id: string): Promise<void> {
  try {
    await put(`/v1/agent/service/deregister/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!(error instanceof ConsulError && error.status === 404)) throw error;
  }
}

function report(onError: ((error: Error) => void) | undefined, error: unknown): void {
  try {
    onError?.(error instanceof Error ? error : new Error(String(error)));
  } catch {
    // a throwing error handler must not stop the heartbeat
  }
}

interface Plan {
  readonly id: string;
  readonly name: string;
  readonly payload: Record<string, unknown>;
  readonly heartbeatMs: number;
  readonly signals: readonly NodeJS.Signals[];
}

/** Checks the options' types and builds Consul's payload; Consul itself judges the rest (its 400s come back). */
function validate(o: RegisterServiceOptions): Plan {
  if (o === null || typeof o !== 'object') throw new TypeError(`${AT}(options) must be an object`);
  for (const key of Object.keys(o)) if (!KNOWN.has(key)) throw new TypeError(`${AT}.${key} is not a known option`);
  if (o.consul !== undefined) {
    if (o.consul === null || typeof o.consul !== 'object') throw new TypeError(`${AT}.consul must be an object`);
    for (const key of Object.keys(o.consul)) {
      if (!(CONNECTION_KEYS as readonly string[]).includes(key)) throw new TypeError(`${AT}.consul.${key} is not a known option`);
    }
  }
  const s = o.service;
  if (s === null || typeof s !== 'object') throw new TypeError(`${AT}.service must be an object`);
  const problem = serviceNameProblem(s.name);
  if (problem) throw new TypeError(`${AT}.service.name is not a valid service name: ${problem}`);
  // The rule discovery applies: an address it would refuse would register fine and then never be called.
  const badAddress = hostProblem(s.address);
  if (badAddress) throw new TypeError(`${AT}.service.address must be a host name or IP address: ${badAddress}`);
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new TypeError(`${AT}.service.port must be an integer from 1 to 65535`);
  const id = s.id ?? `${s.name}-${s.address}-${s.port}`;
  if (typeof id !== 'string' || id === '' || /[\x00-\x1f\x7f]/.test(id)) throw new TypeError(`${AT}.service.id must be a non-empty string`);
  if (s.tags !== undefined && !(Array.isArray(s.tags) && s.tags.every((t) => typeof t === 'string'))) {
    throw new TypeError(`${AT}.service.tags must be an array of strings`);
  }
  if (s.meta !== undefined && !(s.meta !== null && typeof s.meta === 'object' && Object.values(s.meta).every((v) => typeof v === 'string'))) {
    throw new TypeError(`${AT}.service.meta must map strings to strings`);
  }
  const payload: Record<string, unknown> = { ID: id, Name: s.name, Address: s.address, Port: s.port };
  if (s.tags) payload.Tags = [...s.tags];
  if (s.meta) payload.Meta = { ...s.meta };
  if (s.weights !== undefined) {
    const w = s.weights;
    if (w === null || typeof w !== 'object') throw new TypeError(`${AT}.service.weights must be { passing, warning? }`);
    if (!Number.isInteger(w.passing) || w.passing < 1) throw new TypeError(`${AT}.service.weights.passing must be an integer >= 1`);
    const warning = w.warning ?? 1;
    if (!Number.isInteger(warning) || warning < 0) throw new TypeError(`${AT}.service.weights.warning must be an integer >= 0`);
    payload.Weights = { Passing: w.passing, Warning: warning };
  }

  let heartbeatMs = 0;
  const c = o.check;
  if (c !== undefined) {
    if (c === null || typeof c !== 'object') throw new TypeError(`${AT}.check must be { ttlMs } or { http, intervalMs }`);
    const check: Record<string, unknown> = {};
    if ('ttlMs' in c) {
      positive(c.ttlMs, 'check.ttlMs');
      check.TTL = goDuration(c.ttlMs);
      if (c.notes !== undefined) check.Notes = String(c.notes);
      heartbeatMs = o.heartbeatMs ?? c.ttlMs / 3;
      positive(heartbeatMs, 'heartbeatMs');
      if (heartbeatMs >= c.ttlMs) throw new TypeError(`${AT}.heartbeatMs must be less than check.ttlMs`);
    } else if ('http' in c) {
      if (typeof c.http !== 'string' || !/^https?:\/\//.test(c.http)) throw new TypeError(`${AT}.check.http must be an http(s) URL`);
      positive(c.intervalMs, 'check.intervalMs');
      check.HTTP = c.http;
      check.Interval = goDuration(c.intervalMs);
      if (c.timeoutMs !== undefined) check.Timeout = goDuration(positive(c.timeoutMs, 'check.timeoutMs'));
      if (c.method !== undefined) check.Method = String(c.method);
      if (c.header !== undefined) check.Header = c.header;
      if (c.tlsSkipVerify !== undefined) check.TLSSkipVerify = c.tlsSkipVerify === true;
    } else {
      throw new TypeError(`${AT}.check must be { ttlMs } or { http, intervalMs }`);
    }
    if (o.deregisterCriticalAfterMs !== undefined) {
      check.DeregisterCriticalServiceAfter = goDuration(positive(o.deregisterCriticalAfterMs, 'deregisterCriticalAfterMs'));
    }
    payload.Check = check;
  } else if (o.deregisterCriticalAfterMs !== undefined) {
    throw new TypeError(`${AT}.deregisterCriticalAfterMs needs a check`);
  }
  if (o.heartbeatMs !== undefined && heartbeatMs === 0) throw new TypeError(`${AT}.heartbeatMs needs a TTL check`);
  if (o.onError !== undefined && typeof o.onError !== 'function') throw new TypeError(`${AT}.onError must be a function`);

  const signals = o.deregisterOn ?? [];
  if (!Array.isArray(signals) || !signals.every((sig) => typeof sig === 'string' && Object.hasOwn(osConstants.signals, sig))) {
    throw new TypeError(`${AT}.deregisterOn must be an array of signal names, e.g. ['SIGTERM', 'SIGINT']`);
  }
  return { id, name: s.name, payload, heartbeatMs, signals: [...new Set(signals)] };
}

/** A duration: Node's timers overflow past 2^31 - 1 ms, and every duration option shares that limit. */
function positive(v: unknown, at: string): number {
  if (!(typeof v === 'number' && v > 0 && v <= 2_147_483_647)) {
    throw new TypeError(`${AT}.${at} must be a finite number > 0 and at most 2147483647 ms (setTimeout's limit)`);
  }
  return v;
}
