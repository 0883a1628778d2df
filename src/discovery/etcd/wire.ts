/**
 * The JSON that etcd's v3 gRPC gateway speaks (etcd 3.4: `/v3/*`; 3.3 had `/v3beta`, 3.5+ only `/v3`), per
 * Documentation/dev-guide/api_grpc_gateway.md and the messages of etcdserver/etcdserverpb/rpc.proto and
 * mvcc/mvccpb/kv.proto (tag v3.4.23), as protobuf's JSON mapping renders them:
 * - `bytes` fields (key, value, range_end) are base64;
 * - `int64` fields (revision, lease ID, TTL) are decimal strings, since a lease ID passes 2^53;
 * - proto3 leaves out fields at their default, so `"type": "PUT"` (enum 0), `created: false`, `TTL: 0` and
 *   an empty `events` never appear: an absent field is its zero.
 * Every parser here takes untrusted input and throws {@link WireError} naming what was wrong; nothing else.
 */

/** A gateway answer whose shape is not what rpc.proto says. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** UTF-8 text as a protobuf `bytes` field. */
export function b64(text: string | Uint8Array): string {
  return (typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text)).toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A `bytes` field's content (absent: empty); anything but base64 throws. */
export function unb64(v: unknown, at: string): Buffer {
  if (v === undefined || v === null) return Buffer.alloc(0);
  if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) throw new WireError(`${at} is not base64`);
  return Buffer.from(v, 'base64');
}

/**
 * The end of the range holding every key that starts with `prefix`: the prefix with its last byte plus one,
 * trailing 0xff bytes dropped first (clientv3's GetPrefixRangeEnd: `"aa"+1 == "ab"`, `"a\xff"+1 == "b"`).
 * Takes the prefix as bytes (UTF-8 text never holds a 0xff byte; a raw key prefix may).
 * A prefix of only 0xff bytes has no end: `\0` means "every key from `prefix` on" (rpc.proto RangeRequest).
 */
export function prefixEnd(prefix: string | Uint8Array): Buffer {
  const bytes = typeof prefix === 'string' ? Buffer.from(prefix, 'utf8') : Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = bytes[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** An int64 field: a decimal string (or, leniently, a safe integer); absent is 0. */
export function int64(v: unknown, at: string): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === 'string' && /^-?\d{1,19}$/.test(v)) return BigInt(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw new WireError(`${at} is not an int64`);
}

/** One mvccpb.KeyValue: the key as bytes (keys need not be UTF-8), the value, and the revision of its change. */
export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly modRevision: bigint;
}

function keyValue(v: unknown, at: string): KeyValue {
  if (!isObject(v)) throw new WireError(`${at} is not a KeyValue object`);
  return { key: unb64(v.key, `${at}.key`), value: unb64(v.value, `${at}.value`), modRevision: int64(v.mod_revision, `${at}.mod_revision`) };
}

/** `header.revision` of a response (ResponseHeader: "the key-value store revision when the request was applied"). */
function headerRevision(v: unknown, at: string): bigint {
  if (v === undefined) return 0n;
  if (!isObject(v)) throw new WireError(`${at}.header is not an object`);
  return int64(v.revision, `${at}.header.revision`);
}

/** A RangeResponse: its kvs and the store revision it was read at (the watch resumes after it). */
export interface RangeAnswer {
  readonly revision: bigint;
  readonly kvs: readonly KeyValue[];
  /** Set when `limit` cut the answer short; the registry never sets a limit, so it is a wrong shape. */
  readonly more: boolean;
}

export function parseRange(body: unknown): RangeAnswer {
  if (!isObject(body)) throw new WireError('the range answer is not an object');
  const kvs = body.kvs ?? [];
  if (!Array.isArray(kvs)) throw new WireError('kvs is not an array');
  return { revision: headerRevision(body.header, 'range'), kvs: kvs.map((kv, i) => keyValue(kv, `kvs[${i}]`)), more: body.more === true };
}

/** One mvccpb.Event: PUT (type 0, so usually absent) or DELETE (its kv holds the key and mod_revision only). */
export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: KeyValue;
}

/**
 * One line of the `/v3/watch` stream, `{"result": WatchResponse}` (or `{"error": ...}` when the gateway's
 * stream fails), sorted by what the client must do with it, as clientv3's watch.go reads a WatchResponse:
 * - `created`: the watcher exists (its header is the store's revision at creation, not a progress mark, when
 *   the watch started from a past revision: clientv3 does not move its resume revision on it);
 * - `compacted`: `compact_revision` set, "the client should treat the watcher as canceled and should not try
 *   to create any watcher with the same start_revision again" (rpc.proto WatchResponse): relist;
 * - `canceled`: the server ended this watcher (`cancel_reason`, e.g. permission denied);
 * - `events`: changes, in revision order;
 * - `progress`: no events, not created nor canceled (clientv3 IsProgressNotify): "all future events received
 *   in this stream are guaranteed to have a higher revision number than the header.revision number".
 */
export type WatchMessage =
  | { readonly kind: 'created'; readonly revision: bigint }
  | { readonly kind: 'compacted'; readonly compactRevision: bigint }
  | { readonly kind: 'canceled'; readonly reason: string }
  | { readonly kind: 'events'; readonly revision: bigint; readonly events: readonly WatchEvent[] }
  | { readonly kind: 'progress'; readonly revision: bigint }
  | { readonly kind: 'error'; readonly message: string };

export function parseWatchLine(line: string): WatchMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new WireError(`a watch stream line is not JSON (${Buffer.byteLength(line)} bytes)`);
  }
  if (!isObject(parsed)) throw new WireError('a watch stream line is not an object');
  if (parsed.error !== undefined) {
    // grpc-gateway's stream error: {"error": {"grpc_code", "http_code", "message", "http_status"}}.
    const e = parsed.error;
    const message = isObject(e) && typeof e.message === 'string' ? e.message : typeof e === 'string' ? e : 'the watch stream failed';
    return { kind: 'error', message: message.slice(0, 300) };
  }
  const r = parsed.result;
  if (!isObject(r)) throw new WireError('a watch stream line has no result object');
  const revision = headerRevision(r.header, 'watch');
  const compactRevision = int64(r.compact_revision, 'compact_revision');
  if (compactRevision > 0n) return { kind: 'compacted', compactRevision };
  if (r.canceled === true) {
    return { kind: 'canceled', reason: typeof r.cancel_reason === 'string' && r.cancel_reason !== '' ? r.cancel_reason.slice(0, 300) : 'no reason given' };
  }
  if (r.created === true) return { kind: 'created', revision };
  const raw = r.events ?? [];
  if (!Array.isArray(raw)) throw new WireError('events is not an array');
  if (raw.length === 0) return { kind: 'progress', revision };
  const events = raw.map((ev: unknown, i): WatchEvent => {
    if (!isObject(ev)) throw new WireError(`events[${i}] is not an object`);
    const type = ev.type ?? 'PUT';
    if (type !== 'PUT' && type !== 'DELETE' && type !== 0 && type !== 1) throw new WireError(`events[${i}].type is not PUT or DELETE`);
    return { type: type === 'DELETE' || type === 1 ? 'DELETE' : 'PUT', kv: keyValue(ev.kv, `events[${i}].kv`) };
  });
  return { kind: 'events', revision, events };
}

/** LeaseGrantResponse: the lease ID, kept as the decimal string etcd sent (it passes 2^53), and the TTL granted. */
export function parseGrant(body: unknown): { id: string; ttlSeconds: number } {
  if (!isObject(body)) throw new WireError('the lease grant answer is not an object');
  if (typeof body.error === 'string' && body.error !== '') throw new WireError(`etcd refused the lease: ${body.error.slice(0, 300)}`);
  const id = int64(body.ID, 'ID');
  const ttl = int64(body.TTL, 'TTL');
  if (id === 0n || ttl <= 0n) throw new WireError('the lease grant answer has no ID or TTL');
  return { id: id.toString(), ttlSeconds: Number(ttl) };
}

/**
 * The `/v3/lease/keepalive` answer, `{"result": LeaseKeepAliveResponse}`: the TTL renewed, in seconds. A lease
 * etcd no longer has comes back with no TTL (0), which is what etcd 3.4 answers for an expired or revoked one
 * (the Go client reads `TTL <= 0` as "lease expired"), so the caller grants a new lease.
 */
export function parseKeepAlive(body: unknown): number {
  const first = typeof body === 'string' ? firstLine(body) : body;
  if (!isObject(first)) throw new WireError('the keepalive answer is not an object');
  if (first.error !== undefined) {
    const e = first.error;
    throw new WireError(`keepalive failed: ${isObject(e) && typeof e.message === 'string' ? e.message.slice(0, 300) : 'error'}`);
  }
  if (!isObject(first.result)) throw new WireError('the keepalive answer has no result');
  return Number(int64(first.result.TTL, 'TTL'));
}

function firstLine(text: string): unknown {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) throw new WireError('the keepalive answer is empty');
  try {
    return JSON.parse(line);
  } catch {
    throw new WireError('the keepalive answer is not JSON');
  }
}
