/**
 * One row of bench/sidecar.ts, in a process of its own: `node --import tsx bench/sidecar/client.ts '<json>'`.
 *
 * A process per row keeps each client's CPU time clean (`process.cpuUsage()` counts only this row), and keeps
 * the global-fetch rows away from npm undici: importing it installs undici 7's Agent as the global dispatcher,
 * which Node's own fetch then uses (about 1.4x faster than Node 20's bundled undici), so a process that
 * imported it would skew the fetch rows. Only the undici rows `import('undici')`, and the fetch rows check
 * that it stayed out.
 *
 * Protocol on stdio: after the warm-up it prints `ready` and waits for `go` on stdin (the parent samples the
 * proxy's CPU in between, while the proxy is idle); after the measured phase it prints one line
 * `result <json>` (a Result, or `{ "skipped": reason }`) and exits.
 */
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import type { Dispatcher } from 'undici';
import type { Mesh, Policy } from '../../src/index.js';
import { percentile } from '../lib.js';
import { closedLoop } from '../lib/ok-server.js';

export type RowName = 'fetch' | 'mesh-fetch' | 'pools' | 'balanced' | 'mesh-call' | 'mesh-dispatcher' | 'nginx' | 'haproxy';

export interface ClientConfig {
  readonly row: RowName;
  /** Ports of the backends on 127.0.0.1. */
  readonly backends: readonly number[];
  /** Port of the sidecar on 127.0.0.1, for the nginx and haproxy rows. */
  readonly proxyPort?: number;
  readonly inflight: number;
  /** Connections per backend for every undici row; a sidecar's Pool gets this × backends. */
  readonly connections: number;
  readonly warmupRequests: number;
  readonly requests: number;
  readonly runMs: number;
}

export interface Result {
  readonly requests: number;
  readonly errors: number;
  readonly elapsedS: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** This process's user + system CPU time over the measured phase. */
  readonly cpuS: number;
  /** For the fetch rows: the agent global fetch ran on. */
  readonly agent?: string;
}

type Get = () => Promise<boolean>;

interface Row {
  readonly get: Get;
  readonly close: () => Promise<unknown>;
  readonly agent?: string;
}

const DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** Paths of npm undici modules this process has loaded (CJS, so they land in the require cache even via import()). */
function npmUndiciLoaded(): string[] {
  const cache = createRequire(import.meta.url).cache;
  return Object.keys(cache).filter((k) => /[\\/]node_modules[\\/]undici[\\/]/.test(k));
}

/** `MESH_POLICY='{"breaker":false}'` sets the mesh rows' `defaults` (to see what a mechanism costs); default: none. */
function meshDefaults(): Policy {
  return JSON.parse(process.env.MESH_POLICY ?? '{}') as Policy;
}

async function setUp(c: ClientConfig): Promise<Row> {
  const urls = c.backends.map((p) => `http://127.0.0.1:${p}/`);
  let next = 0;
  const pick = (): number => (next = (next + 1) % urls.length);
  const makeMesh = async (): Promise<Mesh> => {
    const { createMesh, staticRegistry } = await import('../../src/index.js');
    return createMesh({ registry: staticRegistry({ users: c.backends.map((p) => `127.0.0.1:${p}`) }), defaults: meshDefaults() });
  };

  if (c.row === 'fetch' || c.row === 'mesh-fetch') {
    // Nothing may have set a global dispatcher before our first fetch: npm undici would have.
    if ((globalThis as Record<symbol, unknown>)[DISPATCHER] !== undefined || npmUndiciLoaded().length > 0) {
      throw new Error('npm undici was loaded before the first fetch; the fetch row would not run on Node’s own undici');
    }
    const agent = `Node's bundled undici ${process.versions.undici}`;
    const fetchText = async (res: Response): Promise<boolean> => (await res.text(), res.ok);
    if (c.row === 'fetch') return { agent, get: async () => fetchText(await fetch(urls[pick()]!)), close: async () => {} };
    const mesh = await makeMesh();
    return { agent, get: async () => fetchText(await mesh.fetch('http://users/')), close: () => mesh.close() };
  }

  const undici = await import('undici');
  // Every undici row reads the body the same way.
  const send = async (url: string, dispatcher: Dispatcher): Promise<boolean> => {
    const { statusCode, body } = await undici.request(url, { dispatcher });
    await body.text();
    return statusCode < 400;
  };
  switch (c.row) {
    case 'pools': {
      const pools = urls.map((u) => new undici.Pool(u, { connections: c.connections }));
      return {
        get: () => {
          const i = pick();
          return send(urls[i]!, pools[i]!);
        },
        close: () => Promise.all(pools.map((p) => p.close())),
      };
    }
    case 'mesh-call': {
      // The reference row: the mesh around a Pool per endpoint by hand, the attempt's signal unread.
      const mesh = await makeMesh();
      const pools = new Map(urls.map((u, i) => [`127.0.0.1:${c.backends[i]}`, new undici.Pool(u, { connections: c.connections })]));
      return {
        get: () => mesh.call('users', (ep) => send(`http://${ep.id}/`, pools.get(ep.id)!)),
        close: async () => {
          await mesh.close();
          await Promise.all([...pools.values()].map((p) => p.close()));
        },
      };
    }
    case 'balanced': {
      const pool = new undici.BalancedPool(urls, { connections: c.connections });
      return { get: () => send('http://users/', pool), close: () => pool.close() };
    }
    case 'mesh-dispatcher': {
      // Imported by its row only, as undici is: it imports undici, which the fetch rows must never load.
      const { meshDispatcher } = await import('../../src/undici.js');
      const mesh = await makeMesh();
      const dispatcher = meshDispatcher(mesh, { connections: c.connections });
      return {
        get: () => send('http://users/', dispatcher),
        close: async () => {
          await dispatcher.close();
          await mesh.close();
        },
      };
    }
    case 'nginx':
    case 'haproxy': {
      if (c.proxyPort === undefined) throw new Error(`${c.row} row without a proxy port`);
      const url = `http://127.0.0.1:${c.proxyPort}/`;
      // One origin, so one Pool: as many sockets as the other undici rows hold over all backends together.
      const pool = new undici.Pool(url, { connections: c.connections * c.backends.length });
      return { get: () => send(url, pool), close: () => pool.close() };
    }
  }
}

/** Resolves on the parent's `go`; gives up after 60 s so an orphaned client cannot hang. */
function waitForGo(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no "go" from the parent within 60 s')), 60_000);
    lines.on('line', (line) => {
      if (line.trim() !== 'go') return;
      clearTimeout(timer);
      resolve(); // before close(), whose 'close' event would otherwise reject first
      lines.close();
    });
    lines.on('close', () => reject(new Error('stdin closed before "go"')));
  });
}

async function main(): Promise<void> {
  const c = JSON.parse(process.argv[2] ?? '') as ClientConfig;
  let row: Row;
  try {
    row = await setUp(c);
    const warm = await closedLoop(row.get, c.inflight, c.warmupRequests, 10_000);
    if (warm.done === 0 || warm.errors === warm.done) throw new Error(`every warm-up request failed (${warm.done})`);
  } catch (error) {
    console.log(`result ${JSON.stringify({ skipped: error instanceof Error ? error.message : String(error) })}`);
    process.exit(0);
  }
  console.log('ready');
  await waitForGo();
  const r = await closedLoop(row.get, c.inflight, c.requests, c.runMs);
  if (row.agent !== undefined && npmUndiciLoaded().length > 0) throw new Error('npm undici got loaded during a fetch row');
  const result: Result = {
    requests: r.done,
    errors: r.errors,
    elapsedS: r.elapsedMs / 1_000,
    rps: (r.done * 1_000) / r.elapsedMs,
    p50Ms: percentile(r.sorted, 50),
    p99Ms: percentile(r.sorted, 99),
    cpuS: r.cpuS,
    ...(row.agent !== undefined && { agent: row.agent }),
  };
  console.log(`result ${JSON.stringify(result)}`);
  // Keep-alive sockets (global fetch's especially) would keep the process alive for seconds.
  await Promise.race([row.close(), new Promise((r) => setTimeout(r, 1_000))]).catch(() => {});
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
