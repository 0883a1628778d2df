import { provesUnsent } from './network-error.js';
import type { Transport } from './transport.js';

const noop = (): void => {};

/**
 * The transport of `mesh.call(service, fn)`: any async function, any protocol. A resolved value is a success
 * and a thrown error a retryable failure (replayed only under the idempotency rules). An error proves that
 * nothing was sent only when it names the endpoint's own address and port: `fn` may talk to other hosts too.
 */
export const callTransport: Transport = {
  statusOf: () => undefined,
  classifyValue: () => 'success',
  outcomeOf: (value, service, attempt) => ({ kind: 'value', value, service, attempt }),
  retryAfterMs: () => undefined,
  discard: noop,
  streams: () => false,
  unsent: (error, endpoint) => provesUnsent(error, endpoint, false),
  explain: (error) => error,
};
