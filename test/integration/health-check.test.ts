/**
 * Active health checks end to end, in real time: node:http servers on 127.0.0.1, a short `intervalMs`, bounded
 * polling waits (no fixed sleeps). The traffic goes through `mesh.call` with its own one-shot requests (no agent),
 * so that the sockets left after close() can only be the probes'.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Endpoint, type Mesh } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { makePki } from '../helpers/certs.js';
import { startTlsBackend } from '../helpers/https-backends.js';
import { waitUntil } from '../helpers/wait-until.js';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A backend whose /healthz answers 200 or 503 as `healthy` says; it counts probes and calls apart. */
interface Checked {
  readonly backend: Backend;
  readonly port: number;
  readonly address: string;
  healthy: boolean;
  probes: number;
  calls: number;
}

async function backend(): Promise<Checked> {
  const checked = { healthy: true, probes: 0, calls: 0 } as Checked;
  const b = await startBackend((req, res) => {
    if (req.url === '/healthz') {
      checked.probes++;
      res.writeHead(checked.healthy ? 200 : 503).end(checked.healthy ? 'ok' : 'down');
    } else {
      checked.calls++;
      res.end('ok');
    }
  });
  cleanup.push(() => b.close());
  return Object.assign(checked, { backend: b, port: b.port, address: b.address });
}

/** One request with no agent and `connection: close`: nothing of the traffic stays open. */
const hit = (ep: Endpoint): Promise<string> =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: ep.host, port: ep.port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('error', reject);
  });

const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length;

async function calls(mesh: Mesh, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await mesh.call('api', hit);
}

describe('active HTTP health checks against real servers', () => {
  it('an endpoint failing /healthz soon gets no traffic, gets it back once it passes; close leaves nothing open', async () => {
    const backends = [await backend(), await backend(), await backend()];
    const [, bad] = backends as [Checked, Checked, Checked];
    const baseline = sockets();
    const mesh = createMesh({
      registry: staticRegistry({ api: backends.map((b) => b.address) }),
      defaults: {
        retry: false,
        breaker: false,
        // A generous timeoutMs: on a loaded machine a healthy endpoint's probe must not time out twice in a row,
        // which would eject it too, put the service in panic and send the bad one traffic again.
        healthCheck: { intervalMs: 50, timeoutMs: 1_000, unhealthyThreshold: 2, healthyThreshold: 2 },
      },
    });
    cleanup.push(() => mesh.close());
    const events: string[] = [];
    mesh.on('ejected', (e) => events.push(`ejected ${e.endpoint.port} ${e.reason}`));
    mesh.on('restored', (e) => events.push(`restored ${e.endpoint.port}`));

    await calls(mesh, 30); // the service is in use
    await waitUntil(() => expect(backends.every((b) => b.probes > 0)).toBe(true));

    bad.healthy = false;
    // Two probes 50 ms apart (plus jitter) take about 0.1 s; the bound is loose for a loaded machine.
    await waitUntil(() => expect(events).toContain(`ejected ${bad.port} health-check`), 3_000);
    const before = bad.calls;
    await calls(mesh, 60);
    expect(bad.calls).toBe(before);

    bad.healthy = true;
    await waitUntil(() => expect(events).toContain(`restored ${bad.port}`), 3_000);
    // Back at its peers' median cost: it draws calls again (bounded: 2,000 calls or 5 s).
    await waitUntil(async () => {
      await calls(mesh, 20);
      expect(bad.calls).toBeGreaterThan(before);
    }, 5_000);

    await mesh.close();
    const probes = backends.map((b) => b.probes);
    // No socket of the checker stays open, on either side.
    await waitUntil(() => expect(sockets()).toBeLessThanOrEqual(baseline));
    for (const b of backends) {
      await waitUntil(async () => expect(await new Promise((r) => b.backend.server.getConnections((_e, n) => r(n)))).toBe(0));
    }
    // No probe after close(): over five more intervals, at most the one in flight at close() may still arrive.
    await new Promise((resolve) => setTimeout(resolve, 250));
    for (const [i, b] of backends.entries()) expect(b.probes - probes[i]!).toBeLessThanOrEqual(1);
  });

  it("probes over https with the service's tls policy (ca, servername)", async () => {
    const pki = makePki();
    cleanup.push(() => pki.close());
    const server = await startTlsBackend('users', pki.server(['users.internal']));
    cleanup.push(() => server.close());
    const mesh = createMesh({
      registry: staticRegistry({ users: [`127.0.0.1:${server.port}`] }),
      defaults: {
        retry: false,
        tls: { ca: pki.ca, servername: 'users.internal' },
        healthCheck: { intervalMs: 50, timeoutMs: 2_000, unhealthyThreshold: 1 }, // one slow handshake must not eject
      },
    });
    cleanup.push(() => mesh.close());
    const ejected: string[] = [];
    mesh.on('ejected', (e) => ejected.push(e.reason));
    await mesh.call('users', () => 'in use');
    await waitUntil(() => expect(server.requests).toBeGreaterThanOrEqual(3));
    expect(server.lastServername).toBe('users.internal');
    expect(ejected).toEqual([]); // every probe verified and passed
    await mesh.close();
  });
});
