import type { AttemptContext, TransportAttempt } from './attempt-context.js';

/**
 * Deadline propagation on the wire (Finagle's `Deadline` context, gRPC's `grpc-timeout`): the time a call has left,
 * as the mesh's own header carries it (whole milliseconds, `x-request-deadline-ms: 250`) and as gRPC's does
 * (PROTOCOL-HTTP2.md: `Timeout → TimeoutValue TimeoutUnit`, TimeoutValue a positive integer of at most 8 ASCII
 * digits, TimeoutUnit one of `H` hours, `M` minutes, `S` seconds, `m` ms, `u` µs, `n` ns). A relative time, not an
 * instant: the two hosts' clocks need not agree, only tick at the same rate.
 *
 * The parsers read what another host sent, so they take hostile input: they never throw, and they refuse anything
 * that is not the exact grammar (signs, decimals, exponents, hex, units in the ms header, a ninth digit).
 */

/** gRPC's header. */
export const GRPC_TIMEOUT_HEADER = 'grpc-timeout';

/**
 * The most a received deadline can say, in ms: setTimeout's limit, the longest bound a mesh timer runs (a policy's
 * `totalMs` is validated to it). A ms header of up to 10 digits above it is clamped to it: it then binds nothing,
 * exactly as a larger value would. 11 digits or more is refused as garbage.
 */
export const MAX_DEADLINE_MS = 2_147_483_647;

/** Longer header values are refused unread (a repeated header joined into a long list, or junk). */
const MAX_VALUE_LENGTH = 128;
// Optional whitespace is a space or a tab (RFC 9110 §5.6.3), nothing else that trim() would take.
const MS_VALUE = /^[ \t]*(\d{1,10})[ \t]*$/;
const GRPC_VALUE = /^[ \t]*(\d{1,8})([HMSmun])[ \t]*$/;
const GRPC_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
const MAX_GRPC_VALUE = 99_999_999;

/**
 * A received ms header (`x-request-deadline-ms`) as ms left, or `undefined` when absent or malformed. Optional
 * whitespace around it is allowed (RFC 9110 §5.5). A repeated header (joined with commas, or an array) reads as
 * its smallest value, provided every value is well formed: a budget is never extended, and a garbled list is not
 * trusted at all. `0` is valid: nothing is left.
 *
 * @example parseDeadlineMs('250') // 250
 * @example parseDeadlineMs('-5') // undefined
 */
export function parseDeadlineMs(value: unknown): number | undefined {
  return smallest(value, readMs);
}

/**
 * A received `grpc-timeout` as ms left (fractional for `u` and `n`), or `undefined` when absent or malformed.
 *
 * @example parseGrpcTimeout('250m') // 250
 * @example parseGrpcTimeout('1S') // 1000
 */
export function parseGrpcTimeout(value: unknown): number | undefined {
  return smallest(value, readGrpc);
}

/**
 * What is left, as a `grpc-timeout` value: whole milliseconds rounded down (`'250m'`, never more than what is
 * left), then seconds, minutes and hours when the value would need a ninth digit; microseconds below 1 ms
 * (`'500u'`). With nothing left it is `'1n'`: the spec wants a positive value, and 1 ns is over on arrival
 * (grpc-js and grpc-go send `0m` / `0n`, which a strict peer may refuse).
 */
export function formatGrpcTimeout(ms: number): string {
  if (!(ms > 0)) return '1n';
  if (ms < 1) return `${Math.max(1, Math.floor(ms * 1_000))}u`;
  let value = Math.floor(ms);
  if (value <= MAX_GRPC_VALUE) return `${value}m`;
  for (const [unit, factor] of [['S', 1_000], ['M', 60], ['H', 60]] as const) {
    value = Math.floor(value / factor);
    if (value <= MAX_GRPC_VALUE || unit === 'H') return `${Math.min(value, MAX_GRPC_VALUE)}${unit}`;
  }
  return `${MAX_GRPC_VALUE}H`; // unreachable: the loop ends in hours
}

/**
 * What an attempt has left, in whole ms rounded down (0 when nothing), read as it starts: each retry or hedge
 * therefore sends less than the one before. The mesh's own attempts read the call's clock; any other context
 * (a mirror's) its `deadline`.
 */
export function timeLeftMs(ctx: AttemptContext): number {
  const own = (ctx as Partial<TransportAttempt>).timeLeftMs;
  const left = own ?? ctx.deadline - Date.now();
  return left > 0 ? Math.floor(left) : 0;
}

function readMs(text: string): number | undefined {
  const m = MS_VALUE.exec(text);
  if (m === null) return undefined;
  const ms = Number(m[1]);
  return ms > MAX_DEADLINE_MS ? MAX_DEADLINE_MS : ms;
}

function readGrpc(text: string): number | undefined {
  const m = GRPC_VALUE.exec(text);
  if (m === null) return undefined;
  const ms = Number(m[1]) * (GRPC_UNIT_MS[m[2] as string] as number);
  return ms > MAX_DEADLINE_MS ? MAX_DEADLINE_MS : ms;
}

/** The smallest of a header's values (a string, a comma list, an array of them), each read by `read`; all must read. */
function smallest(value: unknown, read: (text: string) => number | undefined): number | undefined {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (Array.isArray(value) && value.length > 0 && value.length <= 8 && value.every((v) => typeof v === 'string')) text = value.join(',');
  else return undefined;
  if (text.length > MAX_VALUE_LENGTH) return undefined;
  let least: number | undefined;
  for (const part of text.split(',')) {
    const ms = read(part);
    if (ms === undefined) return undefined;
    if (least === undefined || ms < least) least = ms;
  }
  return least;
}
