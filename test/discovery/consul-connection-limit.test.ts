import { afterEach, describe, expect, it, vi } from 'vitest';
import { consulRegistry } from '../../src/discovery/consul.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Consul's limit of 200 HTTP connections per client", () => {
  it('warns once, naming limits.http_max_conns_per_client, when the 200th concurrent watch starts', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    // Blocking queries that never answer: each holds its request open, as a quiet service does for `wait`.
    const registry = consulRegistry({
      env: {},
      fetch: (_input, init) =>
        new Promise<Response>((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason), { once: true })),
    });
    const stops: (() => void)[] = [];
    for (let i = 1; i <= 199; i++) stops.push(registry.watch!(`svc-${i}`, () => {}, () => {}));
    expect(warn).not.toHaveBeenCalled();
    stops.push(registry.watch!('svc-200', () => {}, () => {}));
    expect(warn).toHaveBeenCalledTimes(1);
    const [message, options] = warn.mock.calls[0]! as unknown as [string, { code?: string }];
    expect(message).toMatch(/200 services are watched.*limits\.http_max_conns_per_client/);
    expect(options.code).toBe('PROXYLESS_CONSUL_CONNECTION_LIMIT');
    stops.push(registry.watch!('svc-201', () => {}, () => {}));
    stops.push(registry.watch!('svc-1', () => {}, () => {})); // a second watcher shares svc-1's query
    expect(warn).toHaveBeenCalledTimes(1);
    for (const stop of stops) stop();
    registry.close();
  });
});
