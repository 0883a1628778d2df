/**
 * A Consul agent double: a node:http server on 127.0.0.1:0 speaking the parts of Consul's HTTP API that
 * proxyless uses, as the captures in test/fixtures/consul show them:
 * - GET /v1/health/service/:name with `passing`, `tag` (repeatable, all must match), `dc`, `filter` (a small
 *   subset of go-bexpr, values quoted or bare), `index` + `wait` blocking semantics: answer at once when the
 *   service's index is past the one asked for, else hold up to `wait` (+ up to wait/16 jitter, as Consul does)
 *   and answer with the same index;
 * - GET /v1/discovery-chain/:name: a compiled chain set with `setDiscoveryChain` (the docs' samples, see
 *   test/fixtures/consul/README.md), or Consul's default chain; the same blocking semantics on the chain's index;
 * - PUT /v1/agent/service/register, /v1/agent/service/deregister/:id, /v1/agent/check/{pass,warn,fail}/:id,
 *   /v1/agent/check/update/:id; TTL expiry ("TTL expired"), DeregisterCriticalServiceAfter, HTTP checks polled;
 * - GET /v1/agent/services, /v1/catalog/services;
 * - headers canonicalised as Go writes them (X-Consul-Index, X-Consul-Knownleader, X-Consul-Lastcontact, ...);
 * - plain-text errors with the bodies of errors.json; ACL 403s for a wrong token, anonymous reads filtered empty.
 * Test hooks make it fail (any status and body, garbage JSON, hanging; for every path or those `only` matches,
 * held blocking queries included), or force the index backwards or to 0.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { toEndpoint, type EndpointInput } from '../../src/endpoint/endpoint.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';
type Json = Record<string, any>;

const ERRORS: { case: string; status: number; body: string }[] = JSON.parse(
  readFileSync(new URL('../fixtures/consul/errors.json', import.meta.url), 'utf8'),
).errors;
/** A body from errors.json, by a fragment of its `case`, with `<...>` placeholders filled in. */
export function consulErrorBody(caseFragment: string, fill: Record<string, string> = {}): string {
  const found = ERRORS.find((e) => e.case.includes(caseFragment));
  if (!found) throw new Error(`errors.json has no case like ${caseFragment}`);
  return Object.entries(fill).reduce((body, [k, v]) => body.replace(k, v), found.body);
}

/** One instance for {@link ConsulDouble.setInstances}. */
export interface InstanceSpec {
  port: number;
  id?: string;
  /** Service.Address; '' means "use the node's address". Default '127.0.0.1'. */
  address?: string;
  node?: string;
  nodeAddress?: string;
  datacenter?: string;
  tags?: string[];
  meta?: Record<string, string> | null;
  nodeMeta?: Record<string, string>;
  weights?: { Passing: number; Warning: number };
  /** The service check's status. Default passing. */
  status?: CheckStatus;
  /** The node's serfHealth status. Default passing. */
  nodeStatus?: CheckStatus;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly token: string | undefined;
  readonly at: number;
  readonly body: string;
}

interface Failure {
  status: number;
  body: string | ((token: string | undefined) => string);
  headers: Record<string, string>;
  only: RegExp | undefined;
}

interface AgentCheck {
  id: string;
  serviceId: string;
  ttlMs?: number;
  deregisterAfterMs?: number;
  ttlTimer?: NodeJS.Timeout;
  reapTimer?: NodeJS.Timeout;
  httpTimer?: NodeJS.Timeout;
}

export interface ConsulDoubleOptions {
  /** Turns ACLs on: this token is required (a wrong one gets 403 "ACL not found"). */
  token?: string;
  datacenter?: string;
  /** Add up to wait/16 to blocking waits, as Consul does. Default true. */
  jitter?: boolean;
}

export type ConsulDouble = Awaited<ReturnType<typeof startConsulDouble>>;

export async function startConsulDouble(options: ConsulDoubleOptions = {}) {
  const dc = options.datacenter ?? 'dc1';
  const jitter = options.jitter ?? true;
  const entries = new Map<string, Json[]>(); // service name -> raw health entries
  const indexes = new Map<string, number>(); // service name -> its modify index
  const chains = new Map<string, unknown>(); // service name -> GET /v1/discovery-chain answer
  const chainIndexes = new Map<string, number>(); // service name -> its chain's modify index
  let raftIndex = 10;
  let emptyIndex = raftIndex; // what a service nobody registered reports
  const waiters = new Set<{ service: string | undefined; wake: (force?: boolean) => void }>();
  const agentChecks = new Map<string, AgentCheck>();
  const agentServices = new Map<string, Json>();
  const requests: RecordedRequest[] = [];
  let failure: Failure | undefined;
  let hanging = false;
  const held = new Set<http.ServerResponse>();
  const tokenOf = new WeakMap<http.ServerResponse, string | undefined>();
  const pathOf = new WeakMap<http.ServerResponse, string>();

  const bump = (service: string): void => {
    indexes.set(service, ++raftIndex);
    for (const w of [...waiters]) if (w.service === service || w.service === undefined) w.wake();
  };
  const wakeAll = (force = false): void => [...waiters].forEach((w) => w.wake(force));
  const indexOf = (service: string): number => indexes.get(service) ?? emptyIndex;
  const chainIndexOf = (service: string): number => chainIndexes.get(service) ?? emptyIndex;
  /** What chain waiters are keyed by in `waiters` (never a service name: those have no NUL). */
  const chainKey = (service: string): string => `\0chain:${service}`;

  function check(node: string, id: string, status: CheckStatus, serviceId = '', serviceName = '', tags: string[] = []): Json {
    const serf = id === 'serfHealth';
    return {
      Node: node, CheckID: id, Name: serf ? 'Serf Health Status' : `Service '${serviceName}' check`, Status: status, Notes: '',
      Output: serf ? 'Agent alive and reachable' : status === 'passing' ? 'ok' : status, ServiceID: serviceId,
      ServiceName: serviceName, ServiceTags: tags, Type: serf ? '' : 'ttl', Interval: '', Timeout: '', ExposedPort: 0,
      Definition: {}, CreateIndex: raftIndex, ModifyIndex: raftIndex,
    };
  }

  function entryOf(service: string, spec: InstanceSpec, i: number): Json {
    const node = spec.node ?? 'node-1';
    const nodeAddress = spec.nodeAddress ?? '127.0.0.1';
    const address = spec.address ?? '127.0.0.1';
    const id = spec.id ?? `${service}-${i + 1}`;
    const tags = spec.tags ?? [];
    return {
      Node: {
        ID: `0d6f4f0e-3a1b-4c55-9a2e-${String(node.length * 7919 + node.charCodeAt(node.length - 1)).padStart(12, '0')}`,
        Node: node, Address: nodeAddress, Datacenter: spec.datacenter ?? dc,
        TaggedAddresses: { lan: nodeAddress, lan_ipv4: nodeAddress, wan: nodeAddress, wan_ipv4: nodeAddress },
        Meta: { 'consul-network-segment': '', ...spec.nodeMeta }, CreateIndex: 14, ModifyIndex: 17,
      },
      Service: {
        ID: id, Service: service, Tags: tags, Address: address,
        ...(address ? { TaggedAddresses: { lan_ipv4: { Address: address, Port: spec.port }, wan_ipv4: { Address: address, Port: spec.port } } } : {}),
        Meta: spec.meta === undefined ? null : spec.meta, Port: spec.port, Weights: spec.weights ?? { Passing: 1, Warning: 1 },
        EnableTagOverride: false, Proxy: { Mode: '', MeshGateway: {}, Expose: {} }, Connect: {}, CreateIndex: raftIndex, ModifyIndex: raftIndex,
      },
      Checks: [check(node, 'serfHealth', spec.nodeStatus ?? 'passing'), check(node, `service:${id}`, spec.status ?? 'passing', id, service, tags)],
    };
  }

  /** Every check object (in every entry) with this CheckID or ServiceID-owned check, for updates. */
  const checksWhere = (pred: (c: Json) => boolean): Json[] =>
    [...entries.values()].flatMap((list) => list.flatMap((e) => (e.Checks as Json[]).filter(pred)));
  const servicesWithCheck = (pred: (c: Json) => boolean): string[] =>
    [...entries].filter(([, list]) => list.some((e) => (e.Checks as Json[]).some(pred))).map(([name]) => name);

  function setStatus(checkId: string, status: CheckStatus, output: string): boolean {
    const pred = (c: Json): boolean => c.CheckID === checkId;
    const found = checksWhere(pred);
    if (found.length === 0) return false;
    const changed = found.some((c) => c.Status !== status || c.Output !== output);
    for (const c of found) Object.assign(c, { Status: status, Output: output, ModifyIndex: raftIndex + 1 });
    const agent = agentChecks.get(checkId);
    if (agent?.deregisterAfterMs !== undefined) {
      if (status !== 'critical') clearTimeout(agent.reapTimer), (agent.reapTimer = undefined);
      else agent.reapTimer ??= setTimeout(() => deregister(agent.serviceId), agent.deregisterAfterMs).unref();
    }
    if (changed) for (const name of servicesWithCheck(pred)) bump(name);
    return true;
  }

  function deregister(serviceId: string): boolean {
    const payload = agentServices.get(serviceId);
    if (!payload) return false;
    agentServices.delete(serviceId);
    for (const [id, c] of agentChecks) {
      if (c.serviceId !== serviceId) continue;
      [c.ttlTimer, c.reapTimer, c.httpTimer].forEach((t) => clearTimeout(t));
      agentChecks.delete(id);
    }
    const list = entries.get(payload.Name) ?? [];
    entries.set(payload.Name, list.filter((e) => e.Service.ID !== serviceId));
    bump(payload.Name);
    return true;
  }

  function armTtl(c: AgentCheck): void {
    if (c.ttlMs === undefined) return;
    clearTimeout(c.ttlTimer);
    c.ttlTimer = setTimeout(() => setStatus(c.id, 'critical', 'TTL expired'), c.ttlMs).unref(); // agent/checks/check.go
  }

  function register(p: Json): string | undefined {
    if (typeof p.Name !== 'string' || p.Name === '') return 'Missing service name';
    if (p.Address === '0.0.0.0' || p.Address === '::' || p.Address === '[::]') return 'Invalid service address';
    if (p.Weights && !(p.Weights.Passing >= 1)) return 'Invalid Weights: Passing must be greater than 0';
    const defs: Json[] = p.Check ? [p.Check] : Array.isArray(p.Checks) ? p.Checks : [];
    for (const d of defs) {
      if (d.TTL && d.Interval) return 'Invalid check: Interval and TTL cannot both be specified';
      if (d.HTTP && !(goMs(d.Interval) > 0)) return 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks';
      if (!d.HTTP && !(goMs(d.TTL) > 0)) return 'Invalid check: TTL must be > 0 for TTL checks';
      if (d.Status !== undefined && !['passing', 'warning', 'critical'].includes(d.Status)) return "Status for checks must 'passing', 'warning', 'critical'";
    }
    const id: string = p.ID || p.Name;
    if (agentServices.has(id)) deregister(id);
    agentServices.set(id, p);
    const entry = entryOf(p.Name, { id, port: p.Port ?? 0, address: p.Address ?? '', tags: p.Tags ?? [], meta: p.Meta ?? {}, weights: p.Weights, node: 'agent', nodeAddress: '127.0.0.1' }, 0);
    entry.Checks = [entry.Checks[0]];
    defs.forEach((d, i) => {
      const checkId = d.CheckID ?? (defs.length === 1 ? `service:${id}` : `service:${id}:${i + 1}`);
      const c = check('agent', checkId, d.Status ?? 'critical', id, p.Name, p.Tags ?? []);
      c.Type = d.HTTP ? 'http' : 'ttl';
      c.Output = '';
      c.Notes = d.Notes ?? '';
      entry.Checks.push(c);
      const agent: AgentCheck = { id: checkId, serviceId: id, ttlMs: d.TTL ? goMs(d.TTL) : undefined, deregisterAfterMs: d.DeregisterCriticalServiceAfter ? goMs(d.DeregisterCriticalServiceAfter) : undefined };
      agentChecks.set(checkId, agent);
      armTtl(agent);
      if (d.HTTP) pollHttp(agent, d.HTTP, goMs(d.Interval));
    });
    entries.set(p.Name, [...(entries.get(p.Name) ?? []), entry]);
    bump(p.Name);
    for (const [checkId, a] of agentChecks) {
      if (a.serviceId === id && a.deregisterAfterMs !== undefined && checksWhere((c) => c.CheckID === checkId)[0]?.Status === 'critical') {
        a.reapTimer = setTimeout(() => deregister(id), a.deregisterAfterMs).unref();
      }
    }
    return undefined;
  }

  function pollHttp(c: AgentCheck, url: string, intervalMs: number): void {
    const run = async (): Promise<void> => {
      let status: CheckStatus = 'critical';
      let output = '';
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(Math.min(intervalMs, 10_000)) });
        status = res.ok ? 'passing' : res.status === 429 ? 'warning' : 'critical';
        output = `HTTP GET ${url}: ${res.status} ${res.statusText}`;
        await res.body?.cancel();
      } catch (error) {
        output = String(error);
      }
      if (!agentChecks.has(c.id)) return;
      setStatus(c.id, status, output);
      c.httpTimer = setTimeout(() => void run(), intervalMs).unref();
    };
    c.httpTimer = setTimeout(() => void run(), 0).unref();
  }

  function healthEntries(service: string, q: URLSearchParams): Json[] {
    const passingRaw = q.get('passing');
    const passing = passingRaw === null ? false : parseBool(passingRaw === '' ? 'true' : passingRaw);
    if (passing === undefined) throw new HttpError(400, 'Invalid value for ?passing');
    const tags = q.getAll('tag');
    const filter = q.get('filter');
    const test = filter ? compileFilter(filter) : () => true;
    return (entries.get(service) ?? []).filter(
      (e) =>
        (!passing || (e.Checks as Json[]).every((c) => c.Status === 'passing')) && // any check, node checks included
        tags.every((t) => (e.Service.Tags as string[]).includes(t)) &&
        test(e),
    );
  }

  function send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    held.delete(res);
    if (res.writableEnded || res.destroyed) return;
    // Go's net/http sniffs a plain-text error body as text/plain; charset=utf-8.
    res.writeHead(status, { 'Content-Type': status === 200 ? 'application/json' : 'text/plain; charset=utf-8', 'Vary': 'Accept-Encoding', ...headers });
    res.end(body);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul');
    const method = req.method ?? 'GET';
    const header = req.headers['x-consul-token'];
    const token = typeof header === 'string' && header !== '' ? header : undefined;
    requests.push({ method, path: url.pathname, query: url.searchParams, token, at: performance.now(), body });
    tokenOf.set(res, token);
    pathOf.set(res, url.pathname);
    if (hanging) return void held.add(res);
    const f = failingFor(url.pathname);
    if (f) {
      return send(res, f.status, typeof f.body === 'function' ? f.body(token) : f.body, f.headers);
    }
    const write = method === 'PUT';
    if (options.token !== undefined && token !== undefined && token !== options.token) return send(res, 403, 'ACL not found');
    const anonymous = options.token !== undefined && token === undefined;
    const route = ROUTES.find((r) => r.pattern.test(url.pathname));
    if (!route) return send(res, 404, 'Invalid URL path: not a recognized HTTP API endpoint\n');
    if (route.method !== method) return send(res, 405, `method ${method} not allowed`, { Allow: `OPTIONS,${route.method}` });
    const arg = decodeURIComponent(url.pathname.replace(route.pattern, '$1'));
    if (write && anonymous) {
      return send(res, 403, `Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write' on ${JSON.stringify(arg)}`);
    }
    try {
      const reply = await route.run(arg, url.searchParams, body, res, anonymous);
      if (reply !== undefined) send(res, 200, reply.body, reply.headers);
    } catch (error) {
      if (error instanceof HttpError) send(res, error.status, error.message);
      else send(res, 500, String(error));
    }
  }

  /** Whether a failure hook answers requests for this path (`respondWith`'s `only` scopes it). */
  const failingFor = (path: string | undefined): Failure | undefined =>
    failure && (!failure.only || (path !== undefined && failure.only.test(path))) ? failure : undefined;

  /** `?index` and `?wait` as Consul parses them (agent/http.go parseWait caps wait at 10 minutes). */
  function blockingParams(q: URLSearchParams): { asked: number; waitMs: number } {
    const rawIndex = q.get('index');
    if (rawIndex !== null && !/^\d+$/.test(rawIndex)) throw new HttpError(400, 'Invalid index');
    let waitMs = 5 * 60_000;
    if (q.has('wait')) {
      waitMs = goMs(q.get('wait')!);
      if (!(waitMs >= 0)) throw new HttpError(400, 'Invalid wait time');
      waitMs = Math.min(waitMs, 10 * 60_000);
    }
    return { asked: rawIndex === null ? 0 : Number(rawIndex), waitMs };
  }

  /**
   * Consul's blocking semantics: while the index asked for (> 0) is still current, hold the request up to `wait`
   * (+ up to wait/16 jitter) and wake when `current()` passes it (`key` is what `bump` wakes), or when a failure
   * hook that covers this path or a hang starts. Resolves false when the request needs no further answer: the
   * client left, it hangs, or the failure hook answered it.
   */
  async function hold(res: http.ServerResponse, key: string, asked: number, waitMs: number, current: () => number): Promise<boolean> {
    if (!(asked > 0 && current() <= asked)) return true;
    const path = pathOf.get(res);
    held.add(res);
    await new Promise<void>((resolve) => {
      const w = { service: key, wake: (force = false) => (force || current() > asked || failingFor(path) || hanging ? done() : undefined) };
      const timer = setTimeout(() => done(), waitMs + (jitter ? Math.random() * (waitMs / 16) : 0));
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(w);
        held.delete(res);
        res.off('close', done);
        resolve();
      };
      waiters.add(w);
      res.on('close', done);
    });
    if (res.destroyed) return false;
    if (hanging) {
      held.add(res);
      return false;
    }
    const f = failingFor(path);
    if (f) {
      send(res, f.status, typeof f.body === 'function' ? f.body(tokenOf.get(res)) : f.body, f.headers);
      return false;
    }
    return true;
  }

  type Reply = { body: string; headers?: Record<string, string> } | undefined;
  const ok = (value: unknown = null): Reply => ({ body: value === null ? '' : JSON.stringify(value) });
  const ROUTES: { pattern: RegExp; method: string; run: (arg: string, q: URLSearchParams, body: string, res: http.ServerResponse, anonymous: boolean) => Reply | Promise<Reply> }[] = [
    {
      pattern: /^\/v1\/health\/service\/(.*)$/,
      method: 'GET',
      run: async (service, q, _body, res, anonymous) => {
        if (service === '') throw new HttpError(400, 'Missing service name');
        if (q.has('dc') && q.get('dc') !== dc) throw new HttpError(500, 'No path to datacenter');
        const { asked, waitMs } = blockingParams(q);
        healthEntries(service, q); // validates ?passing and ?filter before blocking
        if (!(await hold(res, service, asked, waitMs, () => indexOf(service)))) return undefined;
        const list = anonymous ? [] : healthEntries(service, q);
        return {
          body: JSON.stringify(list),
          headers: {
            'X-Consul-Default-Acl-Policy': options.token === undefined ? 'allow' : 'deny',
            'X-Consul-Effective-Consistency': 'leader',
            'X-Consul-Index': String(indexOf(service)),
            'X-Consul-Knownleader': 'true',
            'X-Consul-Lastcontact': '0',
            'X-Consul-Query-Backend': 'blocking-query',
            ...(anonymous ? { 'X-Consul-Results-Filtered-By-Acls': 'true' } : {}),
          },
        };
      },
    },
    {
      // agent/discovery_chain_endpoint.go: GET only here (POST carries overrides); ACLs need service:read.
      pattern: /^\/v1\/discovery-chain\/(.*)$/,
      method: 'GET',
      run: async (service, q, _body, res, anonymous) => {
        if (service === '') throw new HttpError(400, 'Missing chain name');
        if (q.has('dc') && q.get('dc') !== dc) throw new HttpError(500, 'No path to datacenter');
        if (anonymous) {
          throw new HttpError(403, `Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:read' on ${JSON.stringify(service)}`);
        }
        const { asked, waitMs } = blockingParams(q);
        if (!(await hold(res, chainKey(service), asked, waitMs, () => chainIndexOf(service)))) return undefined;
        return {
          body: JSON.stringify(chains.get(service) ?? defaultChain(service, dc)),
          headers: {
            'X-Consul-Default-Acl-Policy': options.token === undefined ? 'allow' : 'deny',
            'X-Consul-Effective-Consistency': 'leader',
            'X-Consul-Index': String(chainIndexOf(service)),
            'X-Consul-Knownleader': 'true',
            'X-Consul-Lastcontact': '0',
            'X-Consul-Query-Backend': 'blocking-query',
          },
        };
      },
    },
    {
      pattern: /^\/v1\/agent\/service\/register$/,
      method: 'PUT',
      run: (_arg, _q, body) => {
        let payload: Json;
        try {
          payload = JSON.parse(body);
        } catch (error) {
          throw new HttpError(400, `Request decode failed: ${(error as Error).message}`);
        }
        const problem = register(payload);
        if (problem) throw new HttpError(400, problem);
        return ok();
      },
    },
    {
      pattern: /^\/v1\/agent\/service\/deregister\/(.+)$/,
      method: 'PUT',
      run: (id) => {
        if (!deregister(id)) throw new HttpError(404, consulErrorBody('deregister', { 'users-9': id }));
        return ok();
      },
    },
    {
      pattern: /^\/v1\/agent\/check\/((?:pass|warn|fail|update)\/.+)$/,
      method: 'PUT',
      run: (arg, q, body) => {
        const [verb, ...rest] = arg.split('/');
        const checkId = rest.join('/');
        const c = agentChecks.get(checkId);
        if (!c) throw new HttpError(404, consulErrorBody('check/pass', { 'service:users-9': checkId }));
        let status: CheckStatus = verb === 'pass' ? 'passing' : verb === 'warn' ? 'warning' : 'critical';
        let output = q.get('note') ?? '';
        if (verb === 'update') {
          let u: Json;
          try {
            u = JSON.parse(body);
          } catch (error) {
            throw new HttpError(400, `Request decode failed: ${(error as Error).message}`);
          }
          if (!['passing', 'warning', 'critical'].includes(u.Status)) throw new HttpError(400, `Invalid check status: '${u.Status}'`);
          [status, output] = [u.Status, u.Output ?? ''];
        }
        setStatus(checkId, status, output);
        armTtl(c);
        return ok();
      },
    },
    { pattern: /^\/v1\/agent\/services$/, method: 'GET', run: () => ok(Object.fromEntries([...agentServices].map(([id, p]) => [id, { ...p, ID: id, Service: p.Name }]))) },
    {
      pattern: /^\/v1\/catalog\/services$/,
      method: 'GET',
      run: () => ok(Object.fromEntries([...entries].filter(([, l]) => l.length > 0).map(([name, l]) => [name, [...new Set(l.flatMap((e) => e.Service.Tags as string[]))]]))),
    },
  ];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString()));
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    /** Every request received, in order. */
    requests,
    /** The current index of a service. */
    indexOf,
    /** Blocking queries held right now. */
    held: () => held.size,
    /** Replaces the instances of `service`. */
    setInstances(service: string, specs: readonly InstanceSpec[]): void {
      entries.set(service, specs.map((s, i) => entryOf(service, s, i)));
      bump(service);
    },
    /** Registry-contract form: `host:port` or `{ host, port, weight }` per instance (one node, ids from the address). */
    setService(service: string, endpoints: readonly EndpointInput[]): void {
      const specs = endpoints.map((input, i) => {
        const e = toEndpoint(input, `setService[${i}]`);
        return { id: `${service}-${e.host}-${e.port}`, address: e.host, port: e.port, tags: [...e.tags], meta: { ...e.meta }, weights: { Passing: e.weight, Warning: 1 } };
      });
      this.setInstances(service, specs);
    },
    /** Raw health entries (a fixture file's content), served as they are. */
    setEntries(service: string, raw: readonly unknown[]): void {
      entries.set(service, structuredClone(raw) as Json[]);
      bump(service);
    },
    /**
     * Serves `body` (a whole `GET /v1/discovery-chain/:name` answer, `{ Chain: ... }`, as the discovery-chain-*
     * fixtures hold) for `service`, and bumps that chain's index so that blocking queries on it answer at once.
     * A service without one gets the chain Consul compiles when no config entry names it.
     */
    setDiscoveryChain(service: string, body: unknown): void {
      chains.set(service, structuredClone(body));
      chainIndexes.set(service, ++raftIndex);
      for (const w of [...waiters]) if (w.service === chainKey(service)) w.wake();
    },
    /** The current index of a service's discovery chain. */
    chainIndexOf,
    /** Sets a check's status (by CheckID: `service:<id>`, or `serfHealth` on every node). */
    setCheckStatus(checkId: string, status: CheckStatus, output = status === 'critical' ? 'TTL expired' : ''): void {
      if (!setStatus(checkId, status, output)) throw new Error(`no check ${checkId}`);
    },
    /** Sets the serfHealth check of one node, in every service's entries. */
    setNodeStatus(node: string, status: CheckStatus): void {
      const pred = (c: Json): boolean => c.CheckID === 'serfHealth' && c.Node === node;
      for (const c of checksWhere(pred)) c.Status = status;
      for (const name of servicesWithCheck(pred)) bump(name);
    },
    /** Every API request (or those whose path matches `only`) gets this answer, held queries too, until respondNormally(). */
    respondWith(status: number, body: Failure['body'], opts: { headers?: Record<string, string>; only?: RegExp } = {}): void {
      failure = { status, body, headers: opts.headers ?? {}, only: opts.only };
      wakeAll();
    },
    /** A 200 whose body is not what Consul sends (malformed JSON by default). */
    respondWithGarbage(body = '[{"Node": {"Node": "node-1", "Addr'): void {
      this.respondWith(200, body, { headers: { 'Content-Type': 'application/json', 'X-Consul-Index': String(raftIndex) } });
    },
    /** Accepts requests and never answers them. */
    hang(): void {
      hanging = true;
      wakeAll();
    },
    respondNormally(): void {
      failure = undefined;
      hanging = false;
    },
    /** Forces every index to `n` (backwards, or 0: the bug the Consul docs warn of) and wakes held queries. */
    setIndex(n: number): void {
      raftIndex = n;
      emptyIndex = n;
      for (const name of indexes.keys()) indexes.set(name, n);
      for (const name of chainIndexes.keys()) chainIndexes.set(name, n);
      // A snapshot restore abandons the state store, which releases every blocked query at once.
      wakeAll(true);
    },
    /** Registered through the agent API: id -> payload. */
    agentServices: (): ReadonlyMap<string, Json> => agentServices,
    /** Status of a check, wherever it appears. */
    checkStatus: (checkId: string): string | undefined => checksWhere((c) => c.CheckID === checkId)[0]?.Status,
    /** The agent forgets every registration (a restart without its data dir). */
    forgetAgentState(): void {
      for (const id of [...agentServices.keys()]) deregister(id);
    },
    async close(): Promise<void> {
      for (const c of agentChecks.values()) [c.ttlTimer, c.reapTimer, c.httpTimer].forEach((t) => clearTimeout(t));
      agentChecks.clear();
      for (const w of [...waiters]) waiters.delete(w);
      for (const res of held) res.destroy();
      held.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export { waitUntil } from './wait-until.js';

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * The chain Consul compiles for a service no service-router, -splitter or -resolver entry names: one default
 * resolver (ConnectTimeout filled in as 5s by the compiler, agent/consul/discoverychain/compile.go), in the
 * shape of the docs' samples (test/fixtures/consul/discovery-chain-*.docs-sample.json) with 1.11+'s Partition.
 */
export function defaultChain(service: string, dc: string): Json {
  const id = `${service}.default.default.${dc}`;
  const sni = `${service}.default.${dc}.internal.47e25151-6212-ba25-8b7e-81adbbbab461.consul`;
  return {
    Chain: {
      ServiceName: service, Namespace: 'default', Partition: 'default', Datacenter: dc, Default: true, Protocol: 'tcp',
      StartNode: `resolver:${id}`,
      Nodes: { [`resolver:${id}`]: { Type: 'resolver', Name: id, Resolver: { Default: true, ConnectTimeout: '5s', Target: id } } },
      Targets: {
        [id]: { ID: id, Service: service, Namespace: 'default', Partition: 'default', Datacenter: dc, MeshGateway: {}, Subset: {}, ConnectTimeout: '5s', SNI: sni, Name: sni },
      },
    },
  };
}

/** Go's strconv.ParseBool. */
function parseBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** A Go duration (`10s`, `1m30s`, `250ms`) in ms; NaN when Go's time.ParseDuration would refuse it. */
export function goMs(v: unknown): number {
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) return v === '0' ? 0 : NaN;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

/**
 * A small subset of go-bexpr, joined by `and`: `Sel == "v"`, `Sel != "v"`, `"v" in Sel`, `"v" not in Sel`,
 * `Sel is empty`, `Sel is not empty`. Selectors are dotted paths into the health entry (`Service.Meta.version`).
 */
function compileFilter(expression: string): (entry: Json) => boolean {
  const clauses = expression.split(/\s+and\s+/).map((clause) => {
    const c = clause.trim();
    let m: RegExpExecArray | null;
    const at = (e: Json, path: string): unknown => path.split('.').reduce<any>((v, k) => (v == null ? undefined : v[k]), e);
    // go-bexpr takes a bare word as a value too: the docs' resolver subsets say `Service.Meta.version == v1`.
    if ((m = /^([\w.]+)\s*(==|!=)\s*(?:"([^"]*)"|([\w.-]+))$/.exec(c))) {
      const [, sel, op, quoted, bare] = m;
      const v = quoted ?? bare;
      return (e: Json) => (String(at(e, sel!) ?? '') === v) === (op === '==');
    }
    if ((m = /^"([^"]*)"\s+(not\s+in|in)\s+([\w.]+)$/.exec(c))) {
      const [, v, op, sel] = m;
      return (e: Json) => {
        const x = at(e, sel!);
        const has = Array.isArray(x) ? x.includes(v) : x !== null && typeof x === 'object' ? Object.hasOwn(x, v!) : false;
        return has === (op === 'in');
      };
    }
    if ((m = /^([\w.]+)\s+is\s+(not\s+)?empty$/.exec(c))) {
      const [, sel, not] = m;
      return (e: Json) => {
        const x = at(e, sel!);
        const empty = x == null || x === '' || (Array.isArray(x) ? x.length === 0 : typeof x === 'object' && Object.keys(x).length === 0);
        return empty !== Boolean(not);
      };
    }
    throw new HttpError(400, `Failed to create boolean expression evaluator: 1:1 (0): no match found, expected: ${JSON.stringify(c)}`);
  });
  return (entry) => clauses.every((t) => t(entry));
}
