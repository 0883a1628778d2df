import { MAX_TIMER_MS } from '../validate.js';

/**
 * Defensive reading of Consul's JSON. Go's encoder leaves out empty fields (`omitempty`) and writes nil pointers
 * and maps as `null`, so every field may be missing or null, which reads as its zero value; a field of the wrong
 * type throws a `TypeError` naming its path. Messages name paths only, never values read from the body: a body
 * may hold anything, a token included (partly, where no redaction finds it).
 */
export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** An object, or undefined for missing / null. */
export function optObject(v: unknown, at: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new TypeError(`${at} must be an object`);
  return v;
}

export function optString(v: unknown, at: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new TypeError(`${at} must be a string`);
  return v;
}

export function optArray(v: unknown, at: string): readonly unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new TypeError(`${at} must be an array`);
  return v;
}

export function optBool(v: unknown, at: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${at} must be a boolean`);
  return v;
}

export function optNumber(v: unknown, at: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${at} must be a finite number`);
  return v;
}

/** Own properties only: a node named `constructor` must not find Object.prototype's. */
export function own(record: Json, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^([-+]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/;
const GO_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * A duration of the chain, in ms (0 when missing). Consul writes both forms: fields with a MarshalJSON of their
 * own as Go strings (`Destination.RequestTimeout: "15s"`, `Resolver.ConnectTimeout: "5s"`), the others as
 * `time.Duration`'s integer nanoseconds (`Resolver.RequestTimeout: 15000000000`: agent/structs/discovery_chain.go
 * converts only ConnectTimeout). Either form may be negative (a negative resolver RequestTimeout turns Envoy's
 * timeout off).
 */
export function duration(v: unknown, at: string): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number' && Number.isFinite(v)) return v / 1e6;
  if (typeof v === 'string') {
    if (v === '0') return 0;
    const m = GO_DURATION.exec(v);
    if (m) {
      let total = 0;
      for (const part of m[2]!.matchAll(GO_PART)) total += Number(part[1]) * UNIT_MS[part[2]!]!;
      return m[1] === '-' ? -total : total;
    }
  }
  throw new TypeError(`${at} must be a Go duration (a string such as "15s", or integer nanoseconds)`);
}

/** A positive duration as a timer option: whole ms, at least 1, at most setTimeout's limit. */
export function timerMs(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms)));
}
