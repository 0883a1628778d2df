import { getServers } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { DiscoveryError, NoEndpointsError } from '../errors.js';

/** Why one query gave no answer. `absent` is NXDOMAIN or NODATA: the name (or record type) is not there. */
export interface Failure {
  readonly absent: boolean;
  readonly text: string;
  readonly cause: unknown;
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: Failure };

type QueryState =
  | { readonly kind: 'running' }
  | { readonly kind: 'timed-out' }
  | { readonly kind: 'aborted'; readonly reason: unknown }
  | { readonly kind: 'finished' };

/**
 * One lookup's resolver, deadline and cancellation. A resolver per lookup, because `cancel()` cancels every
 * query of a resolver and must not reach another service's lookup. Our own deadline bounds the whole lookup
 * (SRV, then the targets): c-ares's own timeouts grow per server and per try, so they are not a deadline.
 */
export class DnsQuery {
  private state: QueryState = { kind: 'running' };
  private readonly resolver: Resolver;
  private readonly timer: NodeJS.Timeout;
  /** The servers asked, for messages: `127.0.0.1:5353, [::1]:53`. */
  readonly servers: string;
  private readonly onAbort = (): void => {
    this.stop({ kind: 'aborted', reason: this.signal.reason });
  };

  /** `servers` undefined: the system's. Throws the signal's reason when it is already aborted. */
  constructor(
    servers: readonly string[] | undefined,
    readonly timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {
    if (signal.aborted) throw signal.reason;
    const count = Math.max(1, servers?.length ?? getServers().length);
    // tries: 1, and the time split among the servers, so that each server is asked once within our deadline.
    this.resolver = new Resolver({ timeout: Math.max(1, Math.floor(timeoutMs / count)), tries: 1 });
    if (servers) this.resolver.setServers(servers);
    this.servers = this.resolver.getServers().join(', ') || 'no DNS server';
    this.timer = setTimeout(() => this.stop({ kind: 'timed-out' }), timeoutMs);
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  get timedOut(): boolean {
    return this.state.kind === 'timed-out';
  }

  /** A method, so that TypeScript does not keep a narrowing of `state` across awaits. */
  private kind(): QueryState['kind'] {
    return this.state.kind;
  }

  /** Runs one query; DNS failures come back as a {@link Failure}, the caller's abort is thrown. */
  async run<T>(query: (resolver: Resolver) => Promise<T>, type: string): Promise<Outcome<T>> {
    if (this.kind() === 'running') {
      try {
        return { ok: true, value: await query(this.resolver) };
      } catch (cause) {
        if (this.kind() === 'running') return { ok: false, failure: failureOf(cause, type) };
      }
    }
    const state = this.state;
    if (state.kind === 'aborted') throw state.reason;
    return { ok: false, failure: this.deadlineFailure() };
  }

  /** What our deadline passing looks like as a failure. */
  deadlineFailure(): Failure {
    return { absent: false, text: `no answer within ${this.timeoutMs} ms (timeout)`, cause: undefined };
  }

  finish(): void {
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.state.kind === 'running') this.state = { kind: 'finished' };
  }

  private stop(state: QueryState): void {
    if (this.state.kind !== 'running') return;
    this.state = state;
    this.resolver.cancel();
  }
}

function failureOf(cause: unknown, type: string): Failure {
  const code = (cause as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOTFOUND':
      return { absent: true, text: 'no such name (NXDOMAIN)', cause };
    case 'ENODATA':
      return { absent: true, text: `no ${type} record (NODATA)`, cause };
    case 'ESERVFAIL':
      return { absent: false, text: 'server failure (SERVFAIL)', cause };
    case 'EREFUSED':
      return { absent: false, text: 'query refused (REFUSED)', cause };
    case 'ETIMEOUT':
      return { absent: false, text: 'no answer (timeout)', cause };
    case 'ECONNREFUSED':
      return { absent: false, text: 'connection refused (ECONNREFUSED)', cause };
    case 'EFORMERR':
      return { absent: false, text: 'the server could not read the query (FORMERR)', cause };
    case 'ENOTIMP':
      return { absent: false, text: 'query type not implemented (NOTIMP)', cause };
    case 'EBADRESP':
      // c-ares >= 1.34.7 (Node 22.23 and 24.21 ship 1.34.8) refuses an SRV target written with name compression,
      // which RFC 2782 forbids but some servers send (c-ares#1287, nodejs/node#66173).
      return {
        absent: false,
        text: `malformed response (EBADRESP${type === 'SRV' ? '; a compressed SRV target, which RFC 2782 forbids, is refused by c-ares >= 1.34.7' : ''})`,
        cause,
      };
    default:
      return { absent: false, text: typeof code === 'string' ? code : cause instanceof Error ? cause.message : String(cause), cause };
  }
}

/** The error of a lookup: NoEndpointsError when every failure is an absence, else DiscoveryError. */
export function lookupError(service: string, detail: string, failures: readonly Failure[]): Error {
  const hard = failures.find((f) => !f.absent);
  const cause = (hard ?? failures[0])?.cause;
  const options = cause === undefined ? undefined : { cause };
  return hard ? new DiscoveryError(service, detail, options) : new NoEndpointsError(service, detail, options);
}
