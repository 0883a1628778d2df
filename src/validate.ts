import { validateTls } from './transport/tls.js';
import { checkBalancer } from './balancer/create.js';
import { isPrime, MAX_MAGLEV_TABLE_SIZE } from './balancer/maglev.js';
import { DEFAULT_RING_HASH } from './balancer/ring-hash.js';
import type { MeshOptions, Policy } from './options.js';
import { serviceNameProblem } from './util/service-name.js';
import { meshNameProblem } from './util/mesh-name.js';
import { OUTLIER_KEYS, validateHealthPolicy, validateOutlierRules } from './validate-health.js';
import { validateMergedPolicies } from './validate-merged.js';
import { boolean, HEADER_NAME, integer, MAX_TIMER_MS, nonNegative, nonNegativeMs, percent, plainObject, positive, positiveMs, unknownKeys } from './validate-primitives.js';

export { HEADER_NAME, integer, MAX_TIMER_MS, nonNegative, nonNegativeMs, percent, plainObject, positiveMs, unknownKeys };

export { serviceNameProblem };

/**
 * Validates every option of `createMesh` once, and throws a `TypeError` that names the option path
 * (`defaults.retry.retries must be an integer >= 0`). The hot path then trusts its configuration.
 */
export function validateMeshOptions(options: MeshOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('createMesh options must be an object');
  const known = new Set(['registry', 'defaults', 'services', 'routes', 'subsets', 'config', 'zone', 'fetch', 'discovery', 'clock', 'random', 'name']);
  unknownKeys(options, known, 'options');
  const nameProblem = options.name === undefined ? undefined : meshNameProblem(options.name);
  if (nameProblem !== undefined) throw new TypeError(`name ${nameProblem}, got ${JSON.stringify(options.name)}`);
  const r = options.registry as unknown;
  if (r === null || typeof r !== 'object' || typeof (r as { resolve?: unknown }).resolve !== 'function') {
    throw new TypeError('registry must be an object with a resolve(service, { signal }) method');
  }
  for (const m of ['watch', 'close'] as const) {
    const f = (r as Record<string, unknown>)[m];
    if (f !== undefined && typeof f !== 'function') throw new TypeError(`registry.${m} must be a function`);
  }
  if (options.defaults !== undefined) validatePolicy(options.defaults, 'defaults');
  if (options.services !== undefined) {
    plainObject(options.services, 'services');
    for (const [name, policy] of Object.entries(options.services)) {
      const reason = serviceNameProblem(name);
      if (reason) throw new TypeError(`services[${JSON.stringify(name)}] is not a valid service name: ${reason}`);
      validatePolicy(policy, `services.${name}`);
    }
  }
  validateMergedPolicies(options.defaults, options.services, options.routes);
  if (options.config !== undefined) {
    const sources = Array.isArray(options.config) ? options.config : [options.config];
    sources.forEach((source: unknown, i) => {
      const at = Array.isArray(options.config) ? `config[${i}]` : 'config';
      const s = source as { watch?: unknown; close?: unknown; name?: unknown } | null;
      if (s === null || typeof s !== 'object' || typeof s.watch !== 'function') {
        throw new TypeError(`${at} must be a config source: an object with a watch(onUpdate, onError) method`);
      }
      if (s.close !== undefined && typeof s.close !== 'function') throw new TypeError(`${at}.close must be a function`);
      if (s.name !== undefined && typeof s.name !== 'string') throw new TypeError(`${at}.name must be a string`);
    });
  }
  if (options.zone !== undefined && (typeof options.zone !== 'string' || options.zone === '')) {
    throw new TypeError('zone must be a non-empty string');
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new TypeError('fetch must be a function');
  if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
    throw new TypeError('clock must be an object with a now() method');
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new TypeError('random must be a function returning numbers in [0, 1)');
  }
  if (options.discovery !== undefined) {
    const d = options.discovery;
    plainObject(d, 'discovery');
    unknownKeys(d, new Set(['refreshMs', 'maxServices', 'resolveTimeoutMs']), 'discovery');
    positiveMs(d.refreshMs, 'discovery.refreshMs');
    integer(d.maxServices, 'discovery.maxServices', 1);
    if (d.maxServices !== undefined && d.maxServices > 1_000_000) {
      // lru-cache allocates its arrays at full size up front
      throw new TypeError('discovery.maxServices must be at most 1000000');
    }
    positiveMs(d.resolveTimeoutMs, 'discovery.resolveTimeoutMs');
  }
}

const POLICY_KEYS = new Set([
  'balancer', 'timeout', 'retry', 'breaker', 'outlier', 'panicThresholdPercent', 'hedge', 'maxConcurrent', 'maxQueued', 'classify', 'unsent',
  'hashHeader', 'ringHash', 'maglev', 'slowStart', 'locality', 'tls', 'host',
  'adaptiveConcurrency', 'admission', 'deadline', 'healthCheck', 'fallback',
]);

/** Validates one policy object (also used for per-call `timeout`, `retry` and `hedge`). */
export function validatePolicy(p: Policy, at: string): void {
  plainObject(p, at);
  unknownKeys(p, POLICY_KEYS, at);
  if (p.balancer !== undefined) checkBalancer(p.balancer, `${at}.balancer`);
  validateTimeout(p.timeout, `${at}.timeout`);
  validateRetry(p.retry, `${at}.retry`);
  if (p.breaker !== undefined && p.breaker !== false) {
    const b = p.breaker;
    plainObject(b, `${at}.breaker`);
    unknownKeys(b, new Set(['errorThresholdPercentage', 'volumeThreshold', 'resetTimeoutMs', 'rollingWindowMs']), `${at}.breaker`);
    percent(b.errorThresholdPercentage, `${at}.breaker.errorThresholdPercentage`);
    integer(b.volumeThreshold, `${at}.breaker.volumeThreshold`, 0);
    positiveMs(b.resetTimeoutMs, `${at}.breaker.resetTimeoutMs`);
    positiveMs(b.rollingWindowMs, `${at}.breaker.rollingWindowMs`);
  }
  if (p.outlier !== undefined && p.outlier !== false) {
    const o = p.outlier;
    plainObject(o, `${at}.outlier`);
    unknownKeys(o, OUTLIER_KEYS, `${at}.outlier`);
    integer(o.consecutiveFailures, `${at}.outlier.consecutiveFailures`, 1);
    positiveMs(o.baseEjectionMs, `${at}.outlier.baseEjectionMs`);
    positiveMs(o.maxEjectionMs, `${at}.outlier.maxEjectionMs`);
    percent(o.maxEjectionPercent, `${at}.outlier.maxEjectionPercent`);
    validateOutlierRules(o as Record<string, unknown>, `${at}.outlier`);
  }
  percent(p.panicThresholdPercent, `${at}.panicThresholdPercent`);
  validateHedge(p.hedge, `${at}.hedge`);
  integer(p.maxConcurrent, `${at}.maxConcurrent`, 1);
  integer(p.maxQueued, `${at}.maxQueued`, 0);
  if (p.classify !== undefined && typeof p.classify !== 'function') throw new TypeError(`${at}.classify must be a function`);
  if (p.unsent !== undefined && typeof p.unsent !== 'function') throw new TypeError(`${at}.unsent must be a function`);
  validateTls(p.tls, `${at}.tls`);
  if (p.host !== undefined && p.host !== 'service' && p.host !== 'endpoint') {
    throw new TypeError(`${at}.host must be 'service' or 'endpoint'`);
  }
  validateBalancing(p, at);
  validateHealthPolicy(p, at);
}


/** The options of the hash balancers, slow start and zone-aware balancing. */
function validateBalancing(p: Policy, at: string): void {
  if (p.hashHeader !== undefined && !(typeof p.hashHeader === 'string' && HEADER_NAME.test(p.hashHeader))) {
    throw new TypeError(`${at}.hashHeader must be an HTTP header name`);
  }
  if (p.ringHash !== undefined) {
    const r = p.ringHash;
    plainObject(r, `${at}.ringHash`);
    unknownKeys(r, new Set(['minRingSize', 'maxRingSize', 'hashBalanceFactor']), `${at}.ringHash`);
    integer(r.minRingSize, `${at}.ringHash.minRingSize`, 1);
    integer(r.maxRingSize, `${at}.ringHash.maxRingSize`, 1);
    const max = DEFAULT_RING_HASH.maxRingSize;
    if ((r.minRingSize ?? 0) > max || (r.maxRingSize ?? 0) > max) {
      throw new TypeError(`${at}.ringHash.minRingSize and maxRingSize must be at most ${max}`);
    }
    if ((r.minRingSize ?? DEFAULT_RING_HASH.minRingSize) > (r.maxRingSize ?? max)) {
      throw new TypeError(`${at}.ringHash.maxRingSize must be >= ${at}.ringHash.minRingSize`);
    }
    integer(r.hashBalanceFactor, `${at}.ringHash.hashBalanceFactor`, 100);
  }
  if (p.maglev !== undefined) {
    const m = p.maglev;
    plainObject(m, `${at}.maglev`);
    unknownKeys(m, new Set(['tableSize', 'hashBalanceFactor']), `${at}.maglev`);
    if (m.tableSize !== undefined && !(isPrime(m.tableSize) && m.tableSize <= MAX_MAGLEV_TABLE_SIZE)) {
      throw new TypeError(`${at}.maglev.tableSize must be a prime number <= ${MAX_MAGLEV_TABLE_SIZE} (e.g. 65537)`);
    }
    integer(m.hashBalanceFactor, `${at}.maglev.hashBalanceFactor`, 100);
  }
  if (p.slowStart !== undefined && p.slowStart !== false) {
    const s = p.slowStart;
    plainObject(s, `${at}.slowStart`);
    unknownKeys(s, new Set(['windowMs', 'aggression', 'minWeightPercent']), `${at}.slowStart`);
    if (s.windowMs === undefined) throw new TypeError(`${at}.slowStart.windowMs is required (or slowStart: false)`);
    positiveMs(s.windowMs, `${at}.slowStart.windowMs`);
    positive(s.aggression, `${at}.slowStart.aggression`);
    percent(s.minWeightPercent, `${at}.slowStart.minWeightPercent`);
  }
  if (p.locality !== undefined && p.locality !== false) {
    const l = p.locality;
    plainObject(l, `${at}.locality`);
    unknownKeys(l, new Set(['overprovisioningFactor']), `${at}.locality`);
    const f = l.overprovisioningFactor;
    if (f !== undefined && !(typeof f === 'number' && Number.isFinite(f) && f >= 1)) {
      throw new TypeError(`${at}.locality.overprovisioningFactor must be a finite number >= 1`);
    }
  }
}

export function validateTimeout(t: unknown, at: string): void {
  if (t === undefined) return;
  plainObject(t, at);
  const o = t as { attemptMs?: unknown; totalMs?: unknown };
  unknownKeys(o, new Set(['attemptMs', 'totalMs']), at);
  positiveMs(o.attemptMs, `${at}.attemptMs`);
  positiveMs(o.totalMs, `${at}.totalMs`);
}

export function validateRetry(r: unknown, at: string): void {
  if (r === undefined || r === false) return;
  plainObject(r, at);
  const o = r as Record<string, unknown>;
  unknownKeys(o, new Set(['retries', 'minDelayMs', 'maxDelayMs', 'factor', 'jitter', 'budget', 'retryOn', 'nonIdempotent']), at);
  integer(o.retries, `${at}.retries`, 0);
  nonNegativeMs(o.minDelayMs, `${at}.minDelayMs`);
  nonNegativeMs(o.maxDelayMs, `${at}.maxDelayMs`);
  if (typeof o.minDelayMs === 'number' && typeof o.maxDelayMs === 'number' && o.maxDelayMs < o.minDelayMs) {
    throw new TypeError(`${at}.maxDelayMs must be >= ${at}.minDelayMs`);
  }
  if (o.factor !== undefined && !(typeof o.factor === 'number' && Number.isFinite(o.factor) && o.factor >= 1)) {
    throw new TypeError(`${at}.factor must be a finite number >= 1`);
  }
  boolean(o.jitter, `${at}.jitter`);
  boolean(o.nonIdempotent, `${at}.nonIdempotent`);
  if (o.retryOn !== undefined) {
    if (!Array.isArray(o.retryOn) || !o.retryOn.every((s) => Number.isInteger(s) && s >= 100 && s <= 599)) {
      throw new TypeError(`${at}.retryOn must be an array of HTTP status codes (100-599)`);
    }
  }
  if (o.budget !== undefined && o.budget !== false) {
    plainObject(o.budget, `${at}.budget`);
    const b = o.budget as Record<string, unknown>;
    unknownKeys(b, new Set(['ratio', 'minPerSecond', 'ttlMs']), `${at}.budget`);
    if (b.ratio !== undefined && !(typeof b.ratio === 'number' && b.ratio >= 0 && b.ratio <= 1000)) {
      throw new TypeError(`${at}.budget.ratio must be a number from 0 to 1000`);
    }
    nonNegative(b.minPerSecond, `${at}.budget.minPerSecond`);
    if (b.ttlMs !== undefined && !(typeof b.ttlMs === 'number' && b.ttlMs >= 1_000 && b.ttlMs <= 60_000)) {
      throw new TypeError(`${at}.budget.ttlMs must be a number from 1000 to 60000`);
    }
  }
}

export function validateHedge(h: unknown, at: string): void {
  if (h === undefined || h === false) return;
  plainObject(h, at);
  const o = h as Record<string, unknown>;
  unknownKeys(o, new Set(['delayMs', 'maxAttempts']), at);
  if (o.delayMs !== 'p95' && !(typeof o.delayMs === 'number' && o.delayMs >= 0 && o.delayMs <= MAX_TIMER_MS)) {
    throw new TypeError(`${at}.delayMs must be a finite number >= 0 and at most ${MAX_TIMER_MS} ms (setTimeout's limit), or 'p95'`);
  }
  integer(o.maxAttempts, `${at}.maxAttempts`, 2);
}
