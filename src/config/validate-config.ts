import type { Policy } from '../options.js';
import { serviceNameProblem } from '../util/service-name.js';
import {
  HEADER_NAME,
  integer,
  nonNegative,
  nonNegativeMs,
  percent,
  plainObject,
  unknownKeys,
  validatePolicy,
  validateRetry,
  validateTimeout,
} from '../validate.js';
import type { BackendRef, MeshConfigInput, RouteMatch, RouteSpec, SubsetSpec } from './types.js';

const CONFIG_KEYS = new Set(['defaults', 'services', 'routes', 'subsets']);
const ROUTE_KEYS = new Set(['name', 'match', 'backends', 'stickyHeader', 'timeout', 'retry', 'hashHeader', 'fault', 'mirror']);
const MATCH_KEYS = new Set(['path', 'method', 'headers', 'query']);
const SUBSET_KEYS = new Set(['tags', 'meta', 'ids']);
/** A subset's name: what metrics and `ctx.backend` show, so a plain token. */
const SUBSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** A route's name becomes a metric label value and an event field: a plain token, bounded. */
const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,126}$/;
/** Regexes come from operators and config sources: bounded in size, and refused when they can backtrack exponentially. */
const MAX_REGEX_LENGTH = 1_000;
/**
 * A quantified group that itself holds a quantifier or an alternation (`(a+)+`, `(a|aa)*`, `(x*){2,}`): the shape
 * that makes V8's backtracking engine take exponential time (ReDoS). JavaScript has no linear-time engine without
 * a flag, so such patterns are refused; what is left is at most polynomial, and the values tested are bounded
 * (route-match.ts).
 */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*(?:[*+?]|\{\d+,?\d*\}|\|)(?:[^()\\]|\\.)*\)(?:[*+]|\{\d+,\d*\})/;

/**
 * Validates a whole configuration, `createMesh`'s or `configure`'s or a config source's, before anything
 * changes: a `TypeError` naming the option (`routes.users[1].backends[0].subset: no subset 'v3' in
 * subsets.users`). Policies are checked as `createMesh` checks them.
 */
export function validateConfigInput(input: unknown, at = 'config', checkSubsets = true): asserts input is MeshConfigInput {
  plainObject(input, at);
  unknownKeys(input as object, CONFIG_KEYS, at);
  const c = input as MeshConfigInput;
  if (c.defaults !== undefined) validatePolicy(c.defaults, 'defaults');
  if (c.services !== undefined) {
    plainObject(c.services, 'services');
    for (const [name, policy] of Object.entries(c.services)) {
      serviceName(name, 'services');
      validatePolicy(policy as Policy, `services.${name}`);
    }
  }
  validateRouting(c.routes, c.subsets, checkSubsets);
}

/**
 * Validates `routes` and `subsets`; with `checkSubsets`, every subset a route names must be defined. A config
 * source's layer is checked without it (its routes may name subsets of another layer), and the merged result with.
 */
export function validateRouting(routes: unknown, subsets: unknown, checkSubsets = true): void {
  if (subsets !== undefined) {
    plainObject(subsets, 'subsets');
    for (const [service, byName] of Object.entries(subsets as object)) {
      serviceName(service, 'subsets');
      plainObject(byName, `subsets.${service}`);
      for (const [name, spec] of Object.entries(byName as object)) {
        if (!SUBSET_NAME.test(name)) throw new TypeError(`subsets.${service}: ${JSON.stringify(name)} is not a valid subset name (letters, digits, . _ -)`);
        validateSubset(spec, `subsets.${service}.${name}`);
      }
    }
  }
  if (routes === undefined) return;
  plainObject(routes, 'routes');
  const known = (subsets ?? {}) as Record<string, Record<string, SubsetSpec>>;
  for (const [service, list] of Object.entries(routes as object)) {
    serviceName(service, 'routes');
    if (!Array.isArray(list)) throw new TypeError(`routes.${service} must be an array of routes`);
    const names = new Set<string>();
    (list as unknown[]).forEach((route, i) => {
      const at = `routes.${service}[${i}]`;
      validateRoute(route, at, service, checkSubsets ? known : undefined);
      const name = (route as RouteSpec).name;
      if (names.has(name)) throw new TypeError(`${at}.name: route '${name}' appears twice in routes.${service}`);
      names.add(name);
    });
  }
}

type KnownSubsets = Record<string, Record<string, SubsetSpec>> | undefined;

function validateRoute(route: unknown, at: string, service: string, subsets: KnownSubsets): void {
  plainObject(route, at);
  unknownKeys(route as object, ROUTE_KEYS, at);
  const r = route as RouteSpec;
  if (typeof r.name !== 'string' || !ROUTE_NAME.test(r.name)) {
    throw new TypeError(`${at}.name must be a route name (letters, digits, . _ : -; at most 127 characters)`);
  }
  if (r.match !== undefined) {
    if (!Array.isArray(r.match)) throw new TypeError(`${at}.match must be an array of match entries`);
    r.match.forEach((m, i) => validateMatch(m, `${at}.match[${i}]`));
  }
  if (r.backends !== undefined) {
    if (!Array.isArray(r.backends) || r.backends.length === 0) throw new TypeError(`${at}.backends must be a non-empty array`);
    r.backends.forEach((b, i) => validateBackend(b, `${at}.backends[${i}]`, service, subsets));
    if (!r.backends.some((b) => (b.weight ?? 1) > 0)) throw new TypeError(`${at}.backends: at least one backend needs a weight > 0`);
  }
  headerName(r.stickyHeader, `${at}.stickyHeader`);
  headerName(r.hashHeader, `${at}.hashHeader`);
  validateTimeout(r.timeout, `${at}.timeout`);
  validateRetry(r.retry, `${at}.retry`);
  if (r.retry && (r.retry as { budget?: unknown }).budget !== undefined) {
    throw new TypeError(`${at}.retry.budget: a route shares its service's retry budget; set it in the service's policy`);
  }
  if (r.fault !== undefined) {
    plainObject(r.fault, `${at}.fault`);
    unknownKeys(r.fault, new Set(['delay', 'abort']), `${at}.fault`);
    const { delay, abort } = r.fault;
    if (delay !== undefined) {
      plainObject(delay, `${at}.fault.delay`);
      unknownKeys(delay, new Set(['ms', 'percent']), `${at}.fault.delay`);
      required(delay.ms, `${at}.fault.delay.ms`);
      nonNegativeMs(delay.ms, `${at}.fault.delay.ms`);
      required(delay.percent, `${at}.fault.delay.percent`);
      percent(delay.percent, `${at}.fault.delay.percent`);
    }
    if (abort !== undefined) {
      plainObject(abort, `${at}.fault.abort`);
      unknownKeys(abort, new Set(['status', 'percent']), `${at}.fault.abort`);
      // The Response constructor accepts 200 to 599; an abort answers with an error status in practice.
      if (!(Number.isInteger(abort.status) && abort.status >= 200 && abort.status <= 599)) {
        throw new TypeError(`${at}.fault.abort.status must be an HTTP status from 200 to 599`);
      }
      required(abort.percent, `${at}.fault.abort.percent`);
      percent(abort.percent, `${at}.fault.abort.percent`);
    }
  }
  if (r.mirror !== undefined) {
    plainObject(r.mirror, `${at}.mirror`);
    unknownKeys(r.mirror, new Set(['subset', 'service', 'percent']), `${at}.mirror`);
    percent(r.mirror.percent, `${at}.mirror.percent`);
    target(r.mirror, `${at}.mirror`, service, subsets);
  }
}

function validateMatch(m: unknown, at: string): void {
  plainObject(m, at);
  unknownKeys(m as object, MATCH_KEYS, at);
  const { path, method, headers, query } = m as RouteMatch;
  if (path !== undefined) {
    plainObject(path, `${at}.path`);
    const keys = Object.keys(path);
    if (keys.length !== 1 || !['exact', 'prefix', 'regex'].includes(keys[0]!)) {
      throw new TypeError(`${at}.path must have exactly one of exact, prefix or regex`);
    }
    const value = (path as Record<string, unknown>)[keys[0]!];
    if (keys[0] === 'regex') regex(value, `${at}.path.regex`);
    else if (typeof value !== 'string' || !value.startsWith('/')) throw new TypeError(`${at}.path.${keys[0]} must be a path starting with '/'`);
  }
  if (method !== undefined && !(typeof method === 'string' && HEADER_NAME.test(method))) {
    throw new TypeError(`${at}.method must be an HTTP method (a token such as 'GET')`);
  }
  if (headers !== undefined) {
    plainObject(headers, `${at}.headers`);
    for (const [name, value] of Object.entries(headers)) {
      headerName(name, `${at}.headers[${JSON.stringify(name)}]`);
      if (typeof value === 'string') continue;
      plainObject(value, `${at}.headers.${name}`);
      unknownKeys(value as object, new Set(['regex']), `${at}.headers.${name}`);
      regex((value as { regex: unknown }).regex, `${at}.headers.${name}.regex`);
    }
  }
  if (query !== undefined) {
    plainObject(query, `${at}.query`);
    for (const [name, value] of Object.entries(query)) {
      if (typeof value !== 'string') throw new TypeError(`${at}.query.${name} must be a string (an exact value)`);
    }
  }
}

/** Weights add up in floating point: bounded, so a sum never overflows or loses the small ones. */
const MAX_WEIGHT = 1_000_000;

function validateBackend(b: unknown, at: string, service: string, subsets: KnownSubsets): void {
  plainObject(b, at);
  unknownKeys(b as object, new Set(['subset', 'service', 'weight', 'priority']), at);
  const ref = b as BackendRef;
  nonNegative(ref.weight, `${at}.weight`);
  if (ref.weight !== undefined && ref.weight > MAX_WEIGHT) throw new TypeError(`${at}.weight must be at most ${MAX_WEIGHT}`);
  integer(ref.priority, `${at}.priority`, 0);
  target(ref, at, service, subsets);
}

/** A backend's or mirror's `service` and `subset`: the service name is valid and the subset is defined for it. */
function target(ref: { subset?: unknown; service?: unknown }, at: string, service: string, subsets: KnownSubsets): void {
  if (ref.service !== undefined) serviceName(ref.service, `${at}.service`, true);
  if (ref.subset === undefined) return;
  const owner = (ref.service as string | undefined) ?? service;
  if (typeof ref.subset !== 'string') throw new TypeError(`${at}.subset must be a string`);
  if (subsets === undefined) return;
  const own = Object.hasOwn(subsets, owner) ? subsets[owner]! : {};
  if (!Object.hasOwn(own, ref.subset)) throw new TypeError(`${at}.subset: no subset '${ref.subset}' in subsets.${owner}`);
}

function validateSubset(spec: unknown, at: string): void {
  plainObject(spec, at);
  unknownKeys(spec as object, SUBSET_KEYS, at);
  const s = spec as SubsetSpec;
  for (const key of ['tags', 'ids'] as const) {
    const list = s[key];
    if (list !== undefined && !(Array.isArray(list) && list.every((t) => typeof t === 'string'))) {
      throw new TypeError(`${at}.${key} must be an array of strings`);
    }
  }
  if (s.meta !== undefined) {
    plainObject(s.meta, `${at}.meta`);
    for (const [k, v] of Object.entries(s.meta)) if (typeof v !== 'string') throw new TypeError(`${at}.meta.${k} must be a string`);
  }
}

function serviceName(name: unknown, at: string, whole = false): void {
  const reason = serviceNameProblem(name as string);
  if (reason) throw new TypeError(whole ? `${at} is not a valid service name: ${reason}` : `${at}[${JSON.stringify(name)}] is not a valid service name: ${reason}`);
}

function headerName(v: unknown, at: string): void {
  if (v !== undefined && !(typeof v === 'string' && HEADER_NAME.test(v))) throw new TypeError(`${at} must be an HTTP header name`);
}

function regex(v: unknown, at: string): void {
  if (typeof v !== 'string' || v.length > MAX_REGEX_LENGTH) throw new TypeError(`${at} must be a regular expression of at most ${MAX_REGEX_LENGTH} characters`);
  try {
    new RegExp(v);
  } catch (error) {
    throw new TypeError(`${at} is not a valid regular expression: ${(error as Error).message}`);
  }
  if (NESTED_QUANTIFIER.test(v)) {
    throw new TypeError(`${at}: a quantified group holding a quantifier or '|' (such as (a+)+) can take exponential time; rewrite it without nesting`);
  }
}

function required(v: unknown, at: string): void {
  if (v === undefined) throw new TypeError(`${at} is required`);
}
