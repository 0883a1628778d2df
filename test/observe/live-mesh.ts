/**
 * A small live system for the observability tests: real node:http backends on 127.0.0.1 (two fast, one slow,
 * one failing), a mesh in front of them, its admin handler on a loopback port, and bounded traffic.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';

export interface LiveMesh {
  readonly mesh: Mesh;
  /** `http://127.0.0.1:port` of the admin handler. */
  readonly adminUrl: string;
  /** Endpoint ids by backend name (fast-1, fast-2, slow, flaky). */
  readonly ids: Readonly<Record<string, string>>;
  /** Starts `workers` loops of calls until {@link stopTraffic} (or `maxMs`, whichever is first). */
  startTraffic(workers?: number, maxMs?: number): void;
  stopTraffic(): Promise<void>;
  /** Calls made so far. */
  calls(): number;
  close(): Promise<void>;
}

export interface LiveMeshOptions {
  /** Endpoint ids: `'address'` (host:port, as a static list gives) or `'name'` (fast-1, ...; reads better in a screenshot). */
  readonly ids?: 'address' | 'name';
}

function delayed(ms: () => number, fail: () => boolean): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (_req, res) => {
    const respond = (): void => {
      if (fail()) res.writeHead(503).end('unavailable');
      else res.end('ok');
    };
    sleep(ms()).then(respond, () => res.destroy());
  };
}

export async function startLiveMesh(options: LiveMeshOptions = {}): Promise<LiveMesh> {
  const backends: Record<string, Backend> = {
    'fast-1': await startBackend(delayed(() => 1 + Math.random() * 3, () => false)),
    'fast-2': await startBackend(delayed(() => 2 + Math.random() * 3, () => false)),
    slow: await startBackend(delayed(() => 60 + Math.random() * 20, () => false)),
    flaky: await startBackend(delayed(() => 2 + Math.random() * 2, () => Math.random() < 0.7)),
  };
  const zones: Record<string, string> = { 'fast-1': 'zone-a', 'fast-2': 'zone-b', slow: 'zone-a', flaky: 'zone-b' };
  const ids: Record<string, string> = {};
  const list = Object.entries(backends).map(([name, b]) => {
    ids[name] = options.ids === 'name' ? name : b.address;
    return { host: '127.0.0.1', port: b.port, id: ids[name], zone: zones[name], weight: name === 'fast-1' ? 2 : 1 };
  });
  const mesh = createMesh({
    registry: staticRegistry({ api: list, users: [backends['fast-1']!.address, backends['fast-2']!.address] }),
    defaults: {
      timeout: { attemptMs: 1_000, totalMs: 3_000 },
      breaker: { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeoutMs: 3_000, rollingWindowMs: 5_000 },
      outlier: { consecutiveFailures: 3, baseEjectionMs: 2_000, maxEjectionPercent: 50 },
    },
  });
  const admin = http.createServer(mesh.adminHandler());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  const adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;

  let running: Promise<void>[] = [];
  let stop = false;
  let calls = 0;
  const worker = async (until: number): Promise<void> => {
    while (!stop && Date.now() < until) {
      calls++;
      const service = calls % 5 === 0 ? 'users' : 'api';
      try {
        const res = await mesh.fetch(`http://${service}/work`);
        await res.arrayBuffer();
      } catch {
        // failures are what the metrics count
      }
    }
  };
  return {
    mesh,
    adminUrl,
    ids,
    startTraffic(workers = 6, maxMs = 60_000) {
      stop = false;
      const until = Date.now() + maxMs;
      running = Array.from({ length: workers }, () => worker(until));
    },
    async stopTraffic() {
      stop = true;
      await Promise.all(running);
    },
    calls: () => calls,
    async close() {
      stop = true;
      await Promise.all(running);
      await mesh.close();
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await Promise.all(Object.values(backends).map((b) => b.close()));
    },
  };
}
