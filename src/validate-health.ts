import type { Policy } from './options.js';
import { HEADER_NAME, integer, percent, plainObject, positiveMs, unknownKeys } from './validate-primitives.js';

/** The keys of `outlier` (its statistical rules are checked here). */
export const OUTLIER_KEYS: ReadonlySet<string> = new Set([
  'consecutiveFailures', 'baseEjectionMs', 'maxEjectionMs', 'maxEjectionPercent', 'intervalMs', 'successRate', 'failurePercent',
]);

/** The outlier detector's interval and statistical rules (`outlier` itself is checked by validatePolicy). */
export function validateOutlierRules(o: Record<string, unknown>, at: string): void {
  positiveMs(o.intervalMs, `${at}.intervalMs`);
  if (o.successRate !== undefined && o.successRate !== false) {
    const s = o.successRate as Record<string, unknown>;
    plainObject(s, `${at}.successRate`);
    unknownKeys(s, new Set(['minHosts', 'requestVolume', 'stdevFactor', 'enforcingPercent']), `${at}.successRate`);
    integer(s.minHosts, `${at}.successRate.minHosts`, 1);
    integer(s.requestVolume, `${at}.successRate.requestVolume`, 1);
    if (s.stdevFactor !== undefined && !(typeof s.stdevFactor === 'number' && Number.isFinite(s.stdevFactor) && s.stdevFactor >= 0)) {
      throw new TypeError(`${at}.successRate.stdevFactor must be a finite number >= 0`);
    }
    percent(s.enforcingPercent, `${at}.successRate.enforcingPercent`);
  }
  if (o.failurePercent !== undefined && o.failurePercent !== false) {
    const f = o.failurePercent as Record<string, unknown>;
    plainObject(f, `${at}.failurePercent`);
    unknownKeys(f, new Set(['threshold', 'minHosts', 'requestVolume', 'enforcingPercent']), `${at}.failurePercent`);
    percent(f.threshold, `${at}.failurePercent.threshold`);
    integer(f.minHosts, `${at}.failurePercent.minHosts`, 1);
    integer(f.requestVolume, `${at}.failurePercent.requestVolume`, 1);
    percent(f.enforcingPercent, `${at}.failurePercent.enforcingPercent`);
  }
}

/** `adaptiveConcurrency`, `admission`, `deadline`, `healthCheck` and `fallback`. */
export function validateHealthPolicy(p: Policy, at: string): void {
  if (p.adaptiveConcurrency !== undefined && p.adaptiveConcurrency !== false) {
    const a = p.adaptiveConcurrency as unknown as Record<string, unknown>;
    const where = `${at}.adaptiveConcurrency`;
    plainObject(a, where);
    unknownKeys(a, new Set(['initial', 'min', 'max', 'smoothing']), where);
    integer(a.initial, `${where}.initial`, 1);
    integer(a.min, `${where}.min`, 1);
    integer(a.max, `${where}.max`, 1);
    if (a.smoothing !== undefined && !(typeof a.smoothing === 'number' && a.smoothing > 0 && a.smoothing <= 1)) {
      throw new TypeError(`${where}.smoothing must be a number > 0 and <= 1`);
    }
  }
  if (p.admission !== undefined && p.admission !== false) {
    const a = p.admission as unknown as Record<string, unknown>;
    const where = `${at}.admission`;
    plainObject(a, where);
    unknownKeys(a, new Set(['successRatio', 'maxRejectPercent', 'windowMs']), where);
    if (a.successRatio !== undefined && !(typeof a.successRatio === 'number' && a.successRatio > 0 && a.successRatio <= 1)) {
      throw new TypeError(`${where}.successRatio must be a number > 0 and <= 1 (the SRE book's 1 / K)`);
    }
    percent(a.maxRejectPercent, `${where}.maxRejectPercent`);
    positiveMs(a.windowMs, `${where}.windowMs`);
  }
  if (p.deadline !== undefined && p.deadline !== false) {
    const d = p.deadline as unknown as Record<string, unknown>;
    plainObject(d, `${at}.deadline`);
    unknownKeys(d, new Set(['header']), `${at}.deadline`);
    if (d.header !== undefined && !(typeof d.header === 'string' && HEADER_NAME.test(d.header))) {
      throw new TypeError(`${at}.deadline.header must be an HTTP header name`);
    }
  }
  if (p.healthCheck !== undefined && p.healthCheck !== false) {
    const h = p.healthCheck as unknown as Record<string, unknown>;
    const where = `${at}.healthCheck`;
    plainObject(h, where);
    unknownKeys(h, new Set(['path', 'intervalMs', 'timeoutMs', 'unhealthyThreshold', 'healthyThreshold']), where);
    // An origin-form path only: a full URL or a `//host` would probe another host than the endpoint.
    if (h.path !== undefined && !(typeof h.path === 'string' && /^\/(?!\/)[\x21-\x7e]*$/.test(h.path))) {
      throw new TypeError(`${where}.path must be a path starting with one '/' (no spaces, no host), like '/healthz'`);
    }
    positiveMs(h.intervalMs, `${where}.intervalMs`);
    positiveMs(h.timeoutMs, `${where}.timeoutMs`);
    integer(h.unhealthyThreshold, `${where}.unhealthyThreshold`, 1);
    integer(h.healthyThreshold, `${where}.healthyThreshold`, 1);
  }
  if (p.fallback !== undefined && typeof p.fallback !== 'function') throw new TypeError(`${at}.fallback must be a function`);
}
