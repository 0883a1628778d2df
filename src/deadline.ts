import { DEFAULT_DEADLINE_HEADER } from './defaults.js';
import { GRPC_TIMEOUT_HEADER, parseDeadlineMs, parseGrpcTimeout } from './transport/deadline.js';

/**
 * What {@link inboundDeadline} reads the headers of: a `node:http` `IncomingMessage` (or anything with a
 * `headers` record, Express's and Fastify's requests included), a fetch `Request` (or anything with
 * `headers.get`), a `Headers`, or a plain headers record.
 */
export type InboundRequest =
  | { readonly headers: Readonly<Record<string, string | readonly string[] | undefined>> }
  | { readonly headers: { get(name: string): string | null } }
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Options of {@link inboundDeadline}. */
export interface InboundDeadlineOptions {
  /** The header that carries the time left, in ms: the `deadline` policy's `header`. Default `x-request-deadline-ms`. */
  header?: string | undefined;
  /** Also read gRPC's `grpc-timeout` (`'250m'`); with both, the smaller wins. Default `true`. */
  grpcTimeout?: boolean | undefined;
}

/**
 * The deadline an incoming request carries, as epoch ms (`Date.now()` + the time left it says), to pass on as
 * the per-call `deadline` of the calls made to serve it, so that they never outlive the caller's caller
 * (Finagle's deadline propagation; gRPC's `grpc-timeout`). Reads the `deadline` policy's header (whole ms), and
 * `grpc-timeout` unless told not to; the smaller wins.
 *
 * `undefined` when the request carries none, or nothing readable: anything but 1 to 10 ASCII digits (optional
 * spaces around) is refused (`-5`, `1e3`, `0x10`, `12.5`, `250ms`), as is a `grpc-timeout` outside its grammar
 * (at most 8 digits and one of `H M S m u n`). A repeated header reads as its smallest value when every value is
 * well formed. A value above 2^31 − 1 ms (about 24.8 days, the longest a mesh timer runs) is clamped to it: it
 * then binds nothing, as a larger one would not. `0` is valid: the deadline is now, and a call made with it fails
 * at once with `TimeoutError`, touching no backend. Hostile input never throws: a header getter that throws
 * reads as no header.
 *
 * Call it as the request arrives (before it waits in a queue): the time left is relative to the moment it is read.
 * Being relative, it needs no agreement between the two hosts' clocks; the time the request spent on the wire is
 * not counted (as in gRPC).
 *
 * @example
 * http.createServer(async (req, res) => {
 *   const users = await mesh.fetch('http://users/v1/me', { deadline: inboundDeadline(req) });
 *   res.end(await users.text());
 * });
 */
export function inboundDeadline(req: InboundRequest, options?: InboundDeadlineOptions): number | undefined {
  const header = headerOption(options);
  const grpc = options?.grpcTimeout ?? true;
  if (typeof grpc !== 'boolean') throw new TypeError('inboundDeadline options.grpcTimeout must be a boolean');
  try {
    const ms = parseDeadlineMs(headerOf(req, header));
    const grpcMs = grpc ? parseGrpcTimeout(headerOf(req, GRPC_TIMEOUT_HEADER)) : undefined;
    const left = ms === undefined ? grpcMs : grpcMs === undefined || ms <= grpcMs ? ms : grpcMs;
    return left === undefined ? undefined : Date.now() + left;
  } catch {
    return undefined; // a getter or a Proxy that throws: no deadline read
  }
}

/** The header name, lower case; a bad option (the caller's code, not a peer's input) is a TypeError. */
function headerOption(options: InboundDeadlineOptions | undefined): string {
  if (options === undefined) return DEFAULT_DEADLINE_HEADER;
  if (options === null || typeof options !== 'object') throw new TypeError('inboundDeadline options must be an object');
  const name = options.header;
  if (name === undefined) return DEFAULT_DEADLINE_HEADER;
  if (typeof name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new TypeError('inboundDeadline options.header must be an HTTP header name');
  }
  return name.toLowerCase();
}

/** The raw value(s) of header `name` (lower case) in any of the shapes {@link InboundRequest} lists. */
function headerOf(req: unknown, name: string): unknown {
  if (req === null || typeof req !== 'object') return undefined;
  if (typeof (req as { get?: unknown }).get === 'function') return (req as { get(n: string): unknown }).get(name);
  const headers = (req as { headers?: unknown }).headers;
  if (headers !== null && typeof headers === 'object') {
    if (typeof (headers as { get?: unknown }).get === 'function') return (headers as { get(n: string): unknown }).get(name);
    return fromRecord(headers as Record<string, unknown>, name);
  }
  return fromRecord(req as Record<string, unknown>, name);
}

/**
 * A record's value for `name`: its lower-case key (node:http lower-cases every name), else a key of any case (a
 * record built by hand). Own properties only: a key on the prototype is no header.
 */
function fromRecord(record: Record<string, unknown>, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(record, name)) return record[name];
  for (const key of Object.keys(record)) {
    if (key.length === name.length && key.toLowerCase() === name) return record[key];
  }
  return undefined;
}
