import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MeshConfigInput } from '../../src/config/types.js';
import { validateConfigInput } from '../../src/config/validate-config.js';
import { consulRegistry } from '../../src/discovery/consul.js';
import { mapDiscoveryChain } from '../../src/sources/consul-chain.js';
import { consulConfig, type ConsulConfigOptions } from '../../src/sources/consul-config.js';
import { startConsulDouble, waitUntil, type ConsulDouble } from '../helpers/consul-double.js';

type Json = Record<string, any>;
/** The docs' sample compilations (website/content/api-docs/discovery-chain.mdx) and one synthesized chain. */
const fixture = (name: string): Json =>
  JSON.parse(readFileSync(new URL(`../fixtures/consul/discovery-chain-${name}.json`, import.meta.url), 'utf8'));
const ROUTER = fixture('router.docs-sample');
const SPLITTER = fixture('splitter.docs-sample');
const FAILOVER_DC = fixture('failover.docs-sample');
const REDIRECT = fixture('redirect.docs-sample');
const FAILOVER_SERVICE = fixture('failover-service.synthesized');

/** A mapping as the source pushes it, run through the mesh's own validator (subset ids stand in for filters). */
function validated(service: string, body: unknown): ReturnType<typeof mapDiscoveryChain> {
  const m = mapDiscoveryChain(service, body);
  const subsets = Object.fromEntries(Object.entries(m.subsets).map(([s, byName]) => [s, Object.fromEntries(Object.keys(byName).map((n) => [n, { ids: [] }]))]));
  validateConfigInput({ services: { [service]: m.policy }, routes: { [service]: m.routes }, subsets });
  return m;
}

describe('mapDiscoveryChain: the docs samples', () => {
  it('HTTP path routing: router routes in order, catch-all without match, timeout, retries, a subset and another service', () => {
    const m = validated('web', ROUTER);
    expect(m.routes).toEqual([
      // Envoy's string prefix, kept exactly: /admin matches /administrator too (our `prefix` would not)
      { name: 'consul-route-0', match: [{ path: { regex: '^/admin' } }], backends: [{ service: 'admin' }], timeout: { attemptMs: 15_000, totalMs: 15_000 } },
      { name: 'consul-route-1', match: [{ headers: { 'x-debug': '1' } }], backends: [{ subset: 'canary' }], retry: { retries: 5, retryOn: [401, 409] } },
      { name: 'consul-route-2' },
    ]);
    expect(m.policy).toEqual({}); // ConnectTimeout is not an attempt timeout
    expect(m.subsets).toEqual({ web: { canary: { filter: 'Service.Meta.flavor == canary', onlyPassing: false } } });
    expect(m.warnings).toEqual(['consul-route-0: PrefixRewrite is not applied (paths are sent as they are)']);
    const prefix = new RegExp((m.routes[0]!.match![0]!.path as { regex: string }).regex);
    expect(['/admin', '/admin/x', '/administrator'].every((p) => prefix.test(p))).toBe(true);
    expect(prefix.test('/x/admin')).toBe(false);
  });

  it('version split: one catch-all route with the split percents as weights, subsets with their filters', () => {
    const m = validated('web', SPLITTER);
    expect(m.routes).toEqual([{ name: 'consul-default', backends: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }] }]);
    expect(m.subsets).toEqual({
      web: { v1: { filter: 'Service.Meta.version == v1', onlyPassing: false }, v2: { filter: 'Service.Meta.version == v2', onlyPassing: false } },
    });
    expect(m.warnings).toEqual([]);
  });

  it('multi-datacenter failover: targets in other datacenters are left out and said so', () => {
    const m = validated('web', FAILOVER_DC);
    expect(m.routes).toEqual([]);
    expect(m.warnings).toEqual([
      "target web.default.dc3 is in datacenter dc3, which this mesh's registry does not see; left out",
      "target web.default.dc4 is in datacenter dc4, which this mesh's registry does not see; left out",
    ]);
  });

  it('datacenter redirect: the service is used as it is, with a warning', () => {
    const m = validated('web', REDIRECT);
    expect(m.routes).toEqual([]);
    expect(m.warnings).toContain('the start node has no target this mesh can reach: the service is used as it is');
  });

  it('failover to another service: priorities, its subset, ring hash, and a RequestTimeout in nanoseconds', () => {
    const m = validated('api', FAILOVER_SERVICE);
    expect(m.routes).toEqual([{ name: 'consul-default', backends: [{}, { service: 'api-backup', subset: 'stable', priority: 1 }] }]);
    expect(m.subsets).toEqual({ 'api-backup': { stable: { filter: '"stable" in Service.Tags', onlyPassing: true } } });
    expect(m.policy).toEqual({
      balancer: 'ring-hash',
      hashHeader: 'x-user-id',
      ringHash: { minRingSize: 2048, maxRingSize: 65_536 },
      timeout: { attemptMs: 2_500, totalMs: 2_500 },
    });
    expect(m.warnings).toHaveLength(2); // dc2 left out; the source-IP hash has no equivalent
  });

  it('accepts the bare chain as well as the { Chain } answer', () => {
    expect(mapDiscoveryChain('web', SPLITTER.Chain)).toEqual(mapDiscoveryChain('web', SPLITTER));
  });
});

/** A chain for web whose router has one route (match, destination) before the catch-all, as the compiler writes it. */
function routed(match: unknown, destination: Json = {}, resolver: Json = {}): Json {
  const chain = structuredClone(ROUTER);
  const router = chain.Chain.Nodes['router:web'];
  router.Routes = [{ Definition: { Match: match, Destination: { Service: 'web', ...destination } }, NextNode: 'resolver:web.default.dc1' }, router.Routes[2]];
  Object.assign(chain.Chain.Nodes['resolver:web.default.dc1'].Resolver, resolver);
  return chain;
}
const first = (body: Json) => validated('web', body).routes[0]!;

describe('mapDiscoveryChain: matches', () => {
  it('headers: Exact, Regex (anchored: Envoy matches the whole value), Prefix, Suffix, Present', () => {
    const header = (h: Json) => first(routed({ HTTP: { Header: [{ Name: 'X-Env', ...h }] } })).match;
    expect(header({ Exact: 'a.b' })).toEqual([{ headers: { 'x-env': 'a.b' } }]);
    expect(header({ Regex: 'a|b' })).toEqual([{ headers: { 'x-env': { regex: '^(?:a|b)$' } } }]);
    expect(header({ Prefix: 'v1.' })).toEqual([{ headers: { 'x-env': { regex: '^v1\\.' } } }]);
    expect(header({ Suffix: '(x)' })).toEqual([{ headers: { 'x-env': { regex: '\\(x\\)$' } } }]);
    expect(header({ Present: true })).toEqual([{ headers: { 'x-env': { regex: '' } } }]);
  });

  it('paths: PathExact, PathRegex anchored, PathPrefix "/" alone is a catch-all', () => {
    expect(first(routed({ HTTP: { PathExact: '/x' } })).match).toEqual([{ path: { exact: '/x' } }]);
    expect(first(routed({ HTTP: { PathRegex: '/v[0-9]+/.*' } })).match).toEqual([{ path: { regex: '^(?:/v[0-9]+/.*)$' } }]);
    expect(first(routed({ HTTP: { PathPrefix: '/' } })).match).toBeUndefined();
    expect(first(routed(null)).match).toBeUndefined();
  });

  it('several methods become one entry each, with the same conditions; query parameters match exactly', () => {
    const r = first(routed({ HTTP: { PathExact: '/x', Methods: ['GET', 'head'], QueryParam: [{ Name: 'debug', Exact: '1' }] } }));
    expect(r.match).toEqual([
      { path: { exact: '/x' }, query: { debug: '1' }, method: 'GET' },
      { path: { exact: '/x' }, query: { debug: '1' }, method: 'HEAD' },
    ]);
  });

  it('what cannot be expressed leaves the route out (named by Consul index) and warns; the rest stays', () => {
    for (const [match, why] of [
      [{ HTTP: { Header: [{ Name: 'x', Exact: '1', Invert: true }] } }, /inverted/],
      [{ HTTP: { QueryParam: [{ Name: 'q', Regex: 'a.*' }] } }, /regex, which has no equivalent/],
      [{ HTTP: { QueryParam: [{ Name: 'q', Present: true }] } }, /presence/],
      [{ HTTP: { PathRegex: '(?i)/admin' } }, /not a valid JavaScript regular expression/],
      [{ HTTP: { Header: [{ Name: 'x', Prefix: 'a' }, { Name: 'X', Suffix: 'b' }] } }, /two conditions on header x/],
    ] as const) {
      const m = validated('web', routed(match));
      expect(m.routes.map((r) => r.name)).toEqual(['consul-route-1']);
      expect(m.warnings.join('\n')).toMatch(why);
      expect(m.warnings[0]).toMatch(/^consul-route-0: .*the route is left out$/);
    }
  });
});

describe('mapDiscoveryChain: destinations, durations and balancers', () => {
  it('takes Go duration strings and integer nanoseconds; a negative resolver timeout means none', () => {
    expect(first(routed(null, { RequestTimeout: '1m30.5s' })).timeout).toEqual({ attemptMs: 90_500, totalMs: 90_500 });
    expect(first(routed(null, { RequestTimeout: 1_500_000 })).timeout).toEqual({ attemptMs: 2, totalMs: 2 }); // 1.5 ms, whole ms up
    const start = (t: unknown) => mapDiscoveryChain('web', { Chain: { ...FAILOVER_DC.Chain, StartNode: 'resolver:web.default.dc1', Nodes: { 'resolver:web.default.dc1': { Type: 'resolver', Resolver: { Target: 'web.default.dc1', RequestTimeout: t } } } } }).policy.timeout;
    expect(start('250ms')).toEqual({ attemptMs: 250, totalMs: 250 });
    expect(start(-1)).toEqual({ attemptMs: 2_147_483_647, totalMs: 2_147_483_647 });
    expect(start(0)).toBeUndefined();
    expect(() => start('15 seconds')).toThrow(TypeError);
  });

  it('RetryOn classes become statuses; network conditions are the mesh own; gRPC ones warn', () => {
    const m = validated('web', routed(null, { NumRetries: 2, RetryOn: ['gateway-error', 'retriable-4xx', 'connect-failure', 'unavailable'], RetryOnStatusCodes: [429] }));
    expect(m.routes[0]!.retry).toEqual({ retries: 2, retryOn: [409, 429, 502, 503, 504] });
    expect(m.warnings).toEqual(['consul-route-0: RetryOn condition unavailable has no equivalent; ignored']);
    expect(first(routed(null, { RetryOn: ['connect-failure'] })).retry).toEqual({ retryOn: [] });
  });

  it('maps every LoadBalancer policy, and the route gets the hash header of its next node', () => {
    for (const [consul, ours] of [['least_request', 'least-request'], ['round_robin', 'round-robin'], ['random', 'random'], ['ring_hash', 'ring-hash'], ['maglev', 'maglev'], ['', undefined]] as const) {
      const body = routed(null);
      body.Chain.Nodes['resolver:web.default.dc1'].LoadBalancer = { Policy: consul, HashPolicies: consul.endsWith('hash') || consul === 'maglev' ? [{ Field: 'header', FieldValue: 'X-Key' }] : undefined };
      const m = validated('web', body);
      expect(m.policy.balancer).toBe(ours);
      expect(m.routes[0]!.hashHeader).toBe(ours === 'ring-hash' || ours === 'maglev' ? 'x-key' : undefined);
    }
  });
});

describe('mapDiscoveryChain: garbage', () => {
  it('throws a TypeError that names the field', () => {
    const chain = (over: Json) => ({ Chain: { ...SPLITTER.Chain, ...over } });
    for (const [body, why] of [
      [null, /JSON object/],
      [[], /JSON object/],
      [{ Chain: null }, /Chain is null/],
      [chain({ Nodes: undefined }), /Chain\.Nodes is missing/],
      [chain({ StartNode: 'splitter:nope' }), /names no node/],
      [chain({ StartNode: 7 }), /Chain\.StartNode must be a string/],
      [chain({ Targets: {} }), /names no target/],
      [chain({ ServiceName: 'other' }), /another service/],
      [chain({ Nodes: { ...SPLITTER.Chain.Nodes, 'splitter:web': { Type: 'splitter', Splits: [{ Weight: '90', NextNode: 'resolver:v1.web.default.dc2' }] } } }), /Weight must be a finite number/],
      [chain({ Nodes: { ...SPLITTER.Chain.Nodes, 'splitter:web': { Type: 'gateway' } } }), /Type must be router, splitter or resolver/],
    ] as const) {
      expect(() => mapDiscoveryChain('web', body)).toThrow(TypeError);
      expect(() => mapDiscoveryChain('web', body)).toThrow(why);
    }
  });

  it('never throws anything but a TypeError, whatever field is missing, null or of another type', () => {
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]): void => {
      if (v === null || typeof v !== 'object') return;
      for (const [k, child] of Object.entries(v)) {
        const p = [...path, Array.isArray(v) ? Number(k) : k];
        paths.push(p);
        walk(child, p);
      }
    };
    let calls = 0;
    for (const [service, body] of [['web', ROUTER], ['web', SPLITTER], ['api', FAILOVER_SERVICE]] as const) {
      paths.length = 0;
      walk(body, []);
      for (const path of paths) {
        for (const replacement of [undefined, null, 7, 'x', [], {}, true, -1]) {
          const copy = structuredClone(body);
          const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], copy);
          if (replacement === undefined) delete parent[path.at(-1)!];
          else parent[path.at(-1)!] = replacement;
          calls++;
          try {
            mapDiscoveryChain(service, copy);
          } catch (error) {
            expect(error).toBeInstanceOf(TypeError);
          }
        }
      }
    }
    expect(calls).toBeGreaterThan(1_000);
  });
});

/** A splitter chain of web in dc2 with one equal leg per target (its service, subset and the subset's filter). */
function splitTo(legs: readonly { service: string; subset: string; filter: string }[]): Json {
  const splits: Json[] = [];
  const nodes: Json = Object.create(null);
  const targets: Json = Object.create(null);
  for (const leg of legs) {
    const id = `${leg.subset}.${leg.service}.default.dc2`;
    splits.push({ Weight: 100 / legs.length, NextNode: `resolver:${id}` });
    nodes[`resolver:${id}`] = { Type: 'resolver', Name: id, Resolver: { Target: id } };
    targets[id] = { ID: id, Service: leg.service, ServiceSubset: leg.subset, Namespace: 'default', Datacenter: 'dc2', Subset: { Filter: leg.filter } };
  }
  nodes['splitter:web'] = { Type: 'splitter', Name: 'web', Splits: splits };
  return { Chain: { ServiceName: 'web', Namespace: 'default', Datacenter: 'dc2', StartNode: 'splitter:web', Nodes: { ...nodes }, Targets: { ...targets } } };
}

/** Runs `body`, then checks (and undoes) any change to the own properties of Object.prototype and Object. */
function withoutPollution(body: () => void | Promise<void>): Promise<void> {
  const targets = [Object.prototype, Object] as Json[];
  const before = targets.map((t) => new Map(Reflect.ownKeys(t).map((k) => [k, Object.getOwnPropertyDescriptor(t, k)!.value])));
  const check = (): void => {
    const changed: string[] = [];
    targets.forEach((t, i) => {
      for (const k of Reflect.ownKeys(t)) {
        const was = before[i]!;
        if (was.has(k) && was.get(k) === Object.getOwnPropertyDescriptor(t, k)!.value) continue;
        changed.push(`${i === 0 ? 'Object.prototype' : 'Object'}.${String(k)}`);
        if (was.has(k)) Object.defineProperty(t, k, { value: was.get(k) });
        else delete t[k as string];
      }
    });
    expect(changed).toEqual([]);
  };
  return Promise.resolve()
    .then(body)
    .finally(check);
}

describe('mapDiscoveryChain: names that are Object.prototype members', () => {
  it('a target on service __proto__ or constructor, or a subset named constructor, is a key of its own: nothing reaches a prototype', async () => {
    await withoutPollution(() => {
      const m = validated(
        'web',
        splitTo([
          { service: '__proto__', subset: 'v1', filter: 'Service.Meta.version == 1' },
          { service: 'constructor', subset: 'v1', filter: 'Service.Meta.version == 2' },
          { service: 'web', subset: 'constructor', filter: 'Service.Meta.version == 3' },
          { service: 'web', subset: 'toString', filter: 'Service.Meta.version == 4' },
        ]),
      );
      expect(m.routes).toEqual([
        {
          name: 'consul-default',
          backends: [
            { service: '__proto__', subset: 'v1', weight: 25 },
            { service: 'constructor', subset: 'v1', weight: 25 },
            { subset: 'constructor', weight: 25 },
            { subset: 'toString', weight: 25 },
          ],
        },
      ]);
      expect(Object.getPrototypeOf(m.subsets)).toBe(Object.prototype); // still a plain object
      expect(Object.keys(m.subsets).sort()).toEqual(['__proto__', 'constructor', 'web']);
      const subset = (n: number) => ({ filter: `Service.Meta.version == ${n}`, onlyPassing: false });
      expect(m.subsets).toEqual(
        Object.fromEntries([
          ['__proto__', { v1: subset(1) }],
          ['constructor', { v1: subset(2) }],
          ['web', { constructor: subset(3), toString: subset(4) }],
        ]),
      );
      expect(Object.keys(m.subsets.web!)).toEqual(['constructor', 'toString']);
      expect(({} as Json).v1).toBeUndefined();
    });
  });

  it('a header or query parameter named __proto__ stays a condition of the route', () => {
    const r = first(routed({ HTTP: { Header: [{ Name: '__proto__', Regex: 'a' }], QueryParam: [{ Name: '__proto__', Exact: '1' }] } }));
    expect(r.match).toHaveLength(1);
    const entry = r.match![0]!;
    expect(Object.keys(entry.headers ?? {})).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(entry.headers, '__proto__')?.value).toEqual({ regex: '^(?:a)$' });
    expect(Object.keys(entry.query ?? {})).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(entry.query, '__proto__')?.value).toBe('1');
  });
});

describe('consulConfig options', () => {
  it('refuses what it cannot use, naming the option', () => {
    const bad: [unknown, RegExp][] = [
      [{}, /consulConfig: services must be a non-empty array of service names/],
      [{ services: [] }, /services must be a non-empty array/],
      [{ services: ['a b'] }, /consulConfig\.services\[0\] is not a valid service name/],
      [{ services: ['web', 'web'] }, /services\[1\]: "web" is listed twice/],
      [{ services: ['web'], waitMs: 0 }, /consulConfig\.waitMs must be a number from 1 to 280000/],
      [{ services: ['web'], dc: '' }, /consulConfig\.dc must be a non-empty string/],
      [{ services: ['web'], tag: 'v1' }, /consulConfig\.tag is not a known option/],
      [{ services: ['web'], url: 'ftp://x' }, /consulConfig\.url must use http/],
      [{ services: ['web'], backoff: { initialMs: 0 } }, /consulConfig\.backoff\.initialMs/],
    ];
    for (const [options, why] of bad) expect(() => consulConfig({ env: {}, ...(options as ConsulConfigOptions) })).toThrow(why);
    const source = consulConfig({ services: ['web'], env: {} });
    expect(source.name).toBe('consul');
    expect(() => source.watch(undefined as never, () => {})).toThrow(/must be functions/);
  });
});

/** The token of the integration tests: any 6 characters of it found in a text is a leak. */
const TOKEN = 's3cr3t-token-abcdef';
const GRAMS = Array.from({ length: TOKEN.length - 5 }, (_, i) => TOKEN.slice(i, i + 6));
/** Everything an error shows: message, stack, String(), and every own field, along the cause chain. */
function everything(error: unknown): string {
  const parts: string[] = [String(error)];
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    parts.push(e.message, e.stack ?? '', String(e), JSON.stringify(e, Object.getOwnPropertyNames(e)));
  }
  return parts.join('\n');
}

let consul: ConsulDouble;
const stops: (() => void | Promise<void>)[] = [];
/** A double in dc2 (the docs' split sample is compiled there) with web's instances and that chain. */
async function double(options: { token?: string } = {}): Promise<ConsulDouble> {
  const d = await startConsulDouble({ datacenter: 'dc2', ...options });
  d.setInstances('web', [
    { id: 'web-1', port: 8081, node: 'node-1', meta: { version: 'v1' } },
    { id: 'web-2', port: 8082, node: 'node-2', meta: { version: 'v1' } },
    { id: 'web-3', port: 8083, node: 'node-1', meta: { version: 'v2' } },
  ]);
  d.setDiscoveryChain('web', SPLITTER);
  return d;
}
beforeEach(async () => {
  consul = await double({ token: TOKEN }); // ACLs on: a request without the token would get 403
});
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  await consul.close();
});

/** A chain moved to dc2, where the double compiles. */
function inDc2(body: Json): Json {
  const copy = structuredClone(body);
  copy.Chain.Datacenter = 'dc2';
  for (const t of Object.values<Json>(copy.Chain.Targets)) t.Datacenter = 'dc2';
  return copy;
}

/** Watches a source on the double: every push (validated as the mesh would) and every error. */
function watch(over: Partial<ConsulConfigOptions> = {}, on: ConsulDouble = consul) {
  const source = consulConfig({ url: on.url, token: TOKEN, env: {}, services: ['web'], waitMs: 10_000, backoff: { initialMs: 20, maxMs: 50 }, ...over });
  const updates: MeshConfigInput[] = [];
  const errors: Error[] = [];
  const stop = source.watch(
    (config) => {
      validateConfigInput(config);
      updates.push(config);
    },
    (error) => errors.push(error),
  );
  stops.push(stop);
  return { source, updates, errors, stop };
}

const SPLIT_CONFIG = {
  services: { web: {} },
  routes: { web: [{ name: 'consul-default', backends: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }] }] },
  subsets: { web: { v1: { ids: ['web-1@node-1', 'web-2@node-2'] }, v2: { ids: ['web-3@node-1'] } } },
};

describe('consulConfig against the Consul double', () => {
  it('pushes the whole configuration once the chain and its filtered subsets answered; ids are consulRegistry endpoint ids', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    expect(w.updates[0]).toEqual(SPLIT_CONFIG);
    expect(w.errors).toEqual([]);
    // Consul applies the resolver's filter itself, on the health query
    const filters = consul.requests.filter((r) => r.path === '/v1/health/service/web').map((r) => r.query.get('filter'));
    expect(new Set(filters)).toEqual(new Set(['Service.Meta.version == v1', 'Service.Meta.version == v2']));
    expect(consul.requests.every((r) => r.token === TOKEN && !r.query.toString().includes('cr3t'))).toBe(true);
    const registry = consulRegistry({ url: consul.url, token: TOKEN, env: {}, watch: false });
    const endpoints = await registry.resolve('web', { signal: AbortSignal.timeout(2_000) });
    expect(endpoints.filter((e) => e.meta.version === 'v1').map((e) => e.id).sort()).toEqual(SPLIT_CONFIG.subsets.web.v1.ids);
  });

  it('a change of the splitter arrives within one blocking round trip, long before the wait', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    await waitUntil(() => expect(consul.requests.some((r) => r.path === '/v1/discovery-chain/web' && r.query.has('index'))).toBe(true));
    await waitUntil(() => expect(consul.held()).toBeGreaterThan(0)); // the chain's blocking query is held
    const split = structuredClone(SPLITTER);
    split.Chain.Nodes['splitter:web'].Splits[0].Weight = 33.33;
    split.Chain.Nodes['splitter:web'].Splits[1].Weight = 66.67;
    const changedAt = performance.now();
    consul.setDiscoveryChain('web', split);
    await waitUntil(() => expect(w.updates).toHaveLength(2), 2_000);
    expect(performance.now() - changedAt).toBeLessThan(1_000); // the wait is 10 s
    expect(w.updates[1]!.routes!.web![0]!.backends).toEqual([{ subset: 'v1', weight: 33.33 }, { subset: 'v2', weight: 66.67 }]);
  });

  it('follows subset membership, and stops the subset loops a new chain no longer names', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    consul.setInstances('web', [
      { id: 'web-1', port: 8081, node: 'node-1', meta: { version: 'v1' } },
      { id: 'web-3', port: 8083, node: 'node-1', meta: { version: 'v2' } },
      { id: 'web-4', port: 8084, node: 'node-2', meta: { version: 'v2', flavor: 'canary' } },
    ]);
    await waitUntil(() => expect(w.updates.at(-1)!.subsets!.web).toEqual({ v1: { ids: ['web-1@node-1'] }, v2: { ids: ['web-3@node-1', 'web-4@node-2'] } }));

    consul.setDiscoveryChain('web', inDc2(ROUTER));
    await waitUntil(() => expect(w.updates.at(-1)!.subsets).toEqual({ web: { canary: { ids: ['web-4@node-2'] } } }));
    expect(w.updates.at(-1)!.routes!.web!.map((r) => r.name)).toEqual(['consul-route-0', 'consul-route-1', 'consul-route-2']);
    expect(w.errors.map((e) => e.message).join()).toMatch(/PrefixRewrite is not applied/); // reported, and the rest used

    const byFilter = (f: string) => consul.requests.filter((r) => r.query.get('filter') === f).length;
    const v1Before = byFilter('Service.Meta.version == v1');
    const canaryBefore = byFilter('Service.Meta.flavor == canary');
    consul.setInstances('web', [{ id: 'web-5', port: 8085, meta: { version: 'v1', flavor: 'canary' } }]);
    await waitUntil(() => expect(byFilter('Service.Meta.flavor == canary')).toBeGreaterThan(canaryBefore)); // the live loop saw it
    await waitUntil(() => expect(w.updates.at(-1)!.subsets!.web).toEqual({ canary: { ids: ['web-5@node-1'] } }));
    expect(byFilter('Service.Meta.version == v1')).toBe(v1Before); // the v1 loop is gone
  });

  it('does not push the same configuration twice', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    const chainAnswers = () => consul.requests.filter((r) => r.path === '/v1/discovery-chain/web').length;
    const before = chainAnswers();
    consul.setDiscoveryChain('web', SPLITTER); // a new index, the same chain
    await waitUntil(() => expect(chainAnswers()).toBeGreaterThan(before));
    consul.setInstances('web', [
      { id: 'web-1', port: 8081, node: 'node-1', meta: { version: 'v1' } },
      { id: 'web-2', port: 8082, node: 'node-2', meta: { version: 'v1' } },
    ]);
    // v1's loop answers the same ids (no push), v2's answers none (a push)
    await waitUntil(() => expect(w.updates.at(-1)!.subsets!.web!.v2).toEqual({ ids: [] }));
    expect(w.updates).toHaveLength(2);
  });

  it('pushes nothing until every governed chain answered once', async () => {
    consul.respondWith(500, 'rpc error making call: No cluster leader', { only: /^\/v1\/discovery-chain\/api$/ });
    const w = watch({ services: ['web', 'api'] });
    await waitUntil(() => expect(w.errors.length).toBeGreaterThanOrEqual(2));
    expect(w.updates).toEqual([]);
    consul.respondNormally();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    expect(w.updates[0]).toEqual({ ...SPLIT_CONFIG, services: { web: {}, api: {} }, routes: { ...SPLIT_CONFIG.routes, api: [] }, subsets: { ...SPLIT_CONFIG.subsets, api: {} } });
  });

  it('a 500, garbage JSON or a body that is not a chain reach onError, push nothing, and are retried', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    const only = /discovery-chain/;
    const json = { 'Content-Type': 'application/json', 'X-Consul-Index': '999' };
    const failsWith = async (why: RegExp): Promise<Error> => {
      const mark = w.errors.length;
      return waitUntil(() => {
        const found = w.errors.slice(mark).find((e) => why.test(e.message));
        expect(found).toBeDefined();
        return found!;
      });
    };
    consul.respondWith(500, 'rpc error making call: No cluster leader', { only });
    const e500 = await failsWith(/Consul answered 500 to GET \/v1\/discovery-chain\/web.*No cluster leader/);
    expect(e500).toMatchObject({ code: 'ECONSUL', status: 500, service: 'web' });
    consul.respondWith(200, '{"Chain": {"Nodes": ', { only, headers: json });
    await failsWith(/discovery-chain\/web is not valid JSON/);
    consul.respondWith(200, '{"Chain": {"StartNode": "splitter:web", "Nodes": {}}}', { only, headers: json });
    await failsWith(/^the discovery chain of web is not usable: Chain.StartNode names no node of Chain.Nodes \(Consul's answer to GET \/v1\/discovery-chain\/web\)$/);
    expect(w.updates).toHaveLength(1); // the last good configuration stays
    const split = structuredClone(SPLITTER);
    split.Chain.Nodes['splitter:web'].Splits.reverse();
    consul.setDiscoveryChain('web', split);
    consul.respondNormally();
    await waitUntil(() => expect(w.updates).toHaveLength(2));
    expect(w.updates[1]!.routes!.web![0]!.backends).toEqual([{ subset: 'v2', weight: 10 }, { subset: 'v1', weight: 90 }]);
  });

  it('the token never appears in an error, whole or 6 characters of it, nor in what is pushed', async () => {
    const w = watch();
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    consul.respondWith(500, (token) => `rpc error: ${'.'.repeat(290)}${token} trailing`, { only: /discovery-chain/ });
    await waitUntil(() => expect(w.errors.length).toBeGreaterThanOrEqual(1));
    consul.respondWith(403, (token) => `ACL not found for ${token}`);
    await waitUntil(() => expect(w.errors.some((e) => e.message.includes('403'))).toBe(true));
    consul.respondWithGarbage(`{"Chain": "${TOKEN}`);
    await waitUntil(() => expect(w.errors.some((e) => e.message.includes('not valid JSON'))).toBe(true));
    consul.respondNormally();
    // a chain that quotes the token where a warning names it (a header name)
    consul.setDiscoveryChain('web', inDc2(routed({ HTTP: { Header: [{ Name: TOKEN, Exact: 'x', Invert: true }] } })));
    await waitUntil(() => expect(w.errors.some((e) => e.message.includes('inverted'))).toBe(true));
    const shown = w.errors.map(everything).join('\n') + JSON.stringify(w.updates);
    expect(GRAMS.filter((g) => shown.includes(g))).toEqual([]);
    expect(consul.requests.at(-1)!.token).toBe(TOKEN); // the double had it to echo
  });

  it('a governed service or chain target named __proto__ is pushed as a key of its own; nothing reaches Object.prototype', async () => {
    await withoutPollution(async () => {
      consul.setInstances('__proto__', [{ id: 'p-1', port: 9001, node: 'node-1', meta: { version: '1' } }]);
      consul.setDiscoveryChain(
        'web',
        splitTo([
          { service: 'web', subset: 'v1', filter: 'Service.Meta.version == v1' },
          { service: '__proto__', subset: 'v1', filter: 'Service.Meta.version == 1' },
        ]),
      );
      const w = watch({ services: ['web', '__proto__'] });
      await waitUntil(() => expect(w.updates).toHaveLength(1));
      const pushed = w.updates[0]!;
      for (const part of [pushed.services, pushed.routes, pushed.subsets]) {
        expect(Object.getPrototypeOf(part)).toBe(Object.prototype);
        expect(Object.keys(part!)).toEqual(['web', '__proto__']);
      }
      expect(pushed).toEqual(
        JSON.parse(
          JSON.stringify({
            services: Object.fromEntries([['web', {}], ['__proto__', {}]]),
            routes: Object.fromEntries([
              ['web', [{ name: 'consul-default', backends: [{ subset: 'v1', weight: 50 }, { service: '__proto__', subset: 'v1', weight: 50 }] }]],
              ['__proto__', []],
            ]),
            subsets: Object.fromEntries([
              ['web', { v1: { ids: ['web-1@node-1', 'web-2@node-2'] } }],
              ['__proto__', { v1: { ids: ['p-1@node-1'] } }],
            ]),
          }),
        ),
      );
      expect(w.errors).toEqual([]);
    });
  });

  it('unsubscribe and close() stop every loop: held queries are closed, no request follows', async () => {
    const open = await double(); // no ACLs: each watch sends a token of its own, which tells their requests apart
    stops.push(() => open.close());
    const a = watch({ token: 'watch-a' }, open);
    const b = watch({ token: 'watch-b' }, open);
    await waitUntil(() => expect(a.updates).toHaveLength(1));
    await waitUntil(() => expect(b.updates).toHaveLength(1));
    await waitUntil(() => expect(open.held()).toBe(6)); // a chain and two subsets each
    a.stop();
    b.source.close();
    await waitUntil(() => expect(open.held()).toBe(0)); // the double saw each held query's connection close
    const seen = open.requests.length;
    open.setDiscoveryChain('web', SPLITTER);
    open.setInstances('web', []);
    // A control watch, started after the changes, makes its round trips; a live loop of a or b would have woken.
    const c = watch({ token: 'watch-c' }, open);
    await waitUntil(() => expect(c.updates).toHaveLength(1));
    await waitUntil(() => expect(open.held()).toBe(3));
    expect(open.requests.slice(seen).map((r) => r.token).filter((t) => t !== 'watch-c')).toEqual([]);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });
});
