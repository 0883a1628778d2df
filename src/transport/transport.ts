import type { Endpoint } from '../endpoint/endpoint.js';
import type { AttemptFn } from './attempt-context.js';

/** How an outcome counts: towards health (failure or not) and whether it may be retried. */
export type Verdict = 'success' | 'failure' | 'retryable-failure';

/** What the default or a custom `classify` is shown of one attempt. */
export type Outcome =
  | {
      /** The function resolved with a value (not an HTTP response). */
      readonly kind: 'value';
      /** What it resolved with. */
      readonly value: unknown;
      /** The logical service. */
      readonly service: string;
      /** 1 for the first attempt. */
      readonly attempt: number;
    }
  | {
      /**
       * The attempt resolved with an HTTP response (any status): a `Response` of any realm (global fetch,
       * undici's own), recognised by its shape (a numeric `status` and `headers.get`).
       */
      readonly kind: 'response';
      /** The response; do not read its body here. */
      readonly response: Response;
      /** The logical service. */
      readonly service: string;
      /** 1 for the first attempt. */
      readonly attempt: number;
    }
  | {
      /** The function threw or rejected (a timeout included). */
      readonly kind: 'error';
      /** What it threw. */
      readonly error: unknown;
      /** The logical service. */
      readonly service: string;
      /** 1 for the first attempt. */
      readonly attempt: number;
    };

/**
 * Whoever else may end a transport's background work on a discarded result (a body being drained) early: the
 * call, for the mesh's close(). `holdDrain(stop)` is called as the work starts (`stop` ends it); the function
 * it returns is called once the work is over, however it ended.
 */
export interface DrainOwner {
  holdDrain(stop: () => void): () => void;
}

/**
 * The protocol seam. The generic call steps (`src/call/`) never look inside a result or an error: they ask
 * the transport. One instance serves every call of its kind; what differs per request is in {@link Exchange}.
 *
 * - `fetch` (`transport/fetch.ts`): HTTP responses of any realm, `Retry-After`, body cancellation;
 * - `call` (`transport/call.ts`): any async function; a value is a success, an error is retryable.
 */
export interface Transport {
  /** The HTTP status when `value` is a response, else `undefined` (labels, events, classification). */
  statusOf(value: unknown): number | undefined;
  /** The default verdict on a resolved value. */
  classifyValue(value: unknown, retryOn: ReadonlySet<number>): Verdict;
  /** What a custom `classify` is shown for a resolved value. */
  outcomeOf(value: unknown, service: string, attempt: number): Outcome;
  /** How long the server asked to wait before a retry (`Retry-After`), in ms, or `undefined`. */
  retryAfterMs(value: unknown): number | undefined;
  /**
   * How long the endpoint asked to be spared, as a latency charge in ms (load biasing: a 429, a `Retry-After` on
   * a failing status; see `loadPenaltyMs` in http.ts), or `undefined`. Absent on a transport without such
   * signals (`mesh.call`'s), so its calls pay one property check. Cheap on a 2xx: no header is read.
   */
  loadPenaltyMs?(value: unknown): number | undefined;
  /**
   * Frees a result the caller will never get (a response body is drained, so its connection is reused). The
   * `owner` (the call) can end such background work sooner: the mesh's close() does.
   */
  discard(value: unknown, owner?: DrainOwner): void;
  /** Whether a result goes on streaming after the call resolves (a body): the call's deadline and close() cover it. */
  streams(value: unknown): boolean;
  /** Whether `error` proves that the request never left for `endpoint` (safe to replay even when not idempotent). */
  unsent(error: unknown, endpoint: Endpoint): boolean;
  /** Puts the reason of a network failure into its message: `fetch failed (ECONNREFUSED 127.0.0.1:8081)`. */
  explain(error: unknown): unknown;
  /**
   * What an injected abort answers with on this transport (a synthetic Response), or absent/`undefined` to
   * reject with the `FaultInjectedError` itself (`mesh.call`).
   */
  faultValue?(fault: { readonly status: number; readonly route: string }): unknown;
  /**
   * `false` when a `fallback`'s value cannot be what the call resolves with on this transport (the undici
   * dispatcher hands its caller's handler a response, never a value): a failed call then keeps its failure.
   */
  readonly fallback?: false;
}

/** One request as a transport planned it: how to send it, and the facts the retry rules need. */
export interface Exchange<T = unknown> {
  readonly transport: Transport;
  /** Sends the request to one endpoint (one attempt). */
  readonly send: AttemptFn<T>;
  /** From the method rule (RFC 9110 §9.2.2) or the caller's `idempotent`. */
  readonly idempotent: boolean;
  /** False when the request body is a stream: such a request is never replayed or hedged. */
  readonly replayable: boolean;
}
