/**
 * A canary rollout driven by `mesh.configure`, with an automatic rollback on errors.
 *
 * `npm run example:canary` starts, on 127.0.0.1, two versions of one service, `checkout`: v1 (2 endpoints, tag
 * `v1`) and v2 (2 endpoints, tag `v2`), and a mesh with the subsets v1/v2 and a route `canary` that splits the
 * calls between them. While 8 workers call `checkout`, the controller shifts the traffic to v2 in steps
 * (0 → 5 → 25 → 50 → 100 %), one `mesh.configure` per step, each held for STEP_MS. At the end of each step it
 * prints the configured weights and the shares it observed over the step, from `mesh.snapshot()`: the calls the
 * route sent to each backend (`services.checkout.routes`), as the difference between two snapshots.
 *
 * When the 50 % step starts, the v2 servers start answering 500 to every request (a bad release). The controller
 * watches v2's error rate over the step (the route's outcomes for the v2 backend, polled 4 times a step): past
 * 5 % (over at least 5 errors) it configures 100 % v1 again, prints "rolled back", holds that for one more step
 * and prints what it saw. The mesh's own outlier detection and breakers take v2's endpoints out too; the route
 * then sends v2's share to v1 (what a backend with no usable endpoint does), so the observed v2 share of that
 * step falls below its weight, and v2's errors stop showing. The controller watches for that as well: a v2 that
 * takes less than half of its share is rolled back too.
 *
 * The last line sums it up with numbers measured in the run, e.g.
 *   canary: steps 0,5,25,50; rolled back at 50 %; final v1 share 100.0 %
 *
 * Environment (all optional):
 * - STEP_MS: how long each step is held (default 1500; the whole run then takes about 7 s). STEP_MS=5000 leaves
 *   time to watch the dashboard.
 * - ADMIN_PORT: the admin handler's port on 127.0.0.1 (default 0: any free port). Its URL is printed first: the
 *   dashboard shows the config version and the route's weights against the observed shares as they change.
 * - FAIL_AT: the step (a percent of the plan) at which v2 starts failing, or `never` for a rollout to 100 %
 *   (default 50).
 *
 * Everything is on loopback; the run is bounded in time and calls, and exits by itself (0, or 1 when something
 * it checks does not hold).
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMesh, staticRegistry, type Mesh, type MeshConfigInput, type MeshSnapshot } from 'proxyless';

const SERVICE = 'checkout';
const ROUTE = 'canary';
const PLAN = [0, 5, 25, 50, 100] as const;
const WORKERS = 8;
const ERROR_THRESHOLD = 0.05;
/**
 * The errors a step must have seen on v2 before its error rate is judged. Few: once v2 fails, the mesh's outlier
 * detection and breakers soon take its endpoints out, and the route then sends v2's share to v1, so a failing v2
 * may get only a dozen calls over a step.
 */
const MIN_V2_ERRORS = 5;
/**
 * The second signal: v2 takes less than half of what its weight gives it, over enough calls (50 expected: a
 * healthy v2 falls that short by chance about once in 10,000 checks). That is the mesh routing around a v2
 * that has no usable endpoint (every one ejected or behind an open breaker), so its errors stop showing.
 */
const MIN_EXPECTED_V2_CALLS = 50;
/** A worker's pause after a failed call (see the worker). */
const PAUSE_AFTER_FAILURE_MS = 5;
const MAX_CALLS = 2_000_000;

interface Settings {
  readonly stepMs: number;
  readonly adminPort: number;
  readonly failAt: number | undefined;
}

function settings(env: NodeJS.ProcessEnv): Settings {
  const stepMs = Number(env.STEP_MS ?? 1_500);
  if (!(Number.isInteger(stepMs) && stepMs >= 100 && stepMs <= 120_000)) {
    throw new TypeError(`STEP_MS must be an integer number of milliseconds in [100, 120000], got ${env.STEP_MS}`);
  }
  const adminPort = Number(env.ADMIN_PORT ?? 0);
  if (!(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65_535)) {
    throw new TypeError(`ADMIN_PORT must be a port number (0 for any free one), got ${env.ADMIN_PORT}`);
  }
  const fail = env.FAIL_AT ?? '50';
  const failAt = fail === 'never' ? undefined : Number(fail);
  if (failAt !== undefined && !(PLAN as readonly number[]).includes(failAt)) {
    throw new TypeError(`FAIL_AT must be one of ${PLAN.join(', ')} or 'never', got ${fail}`);
  }
  return { stepMs, adminPort, failAt };
}

/** One version of the service: `count` node:http servers; `failing` makes them all answer 500. */
async function startVersion(version: string, count: number) {
  const state = { failing: false };
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.statusCode = state.failing ? 500 : 200;
          res.setHeader('content-type', 'text/plain');
          res.end(state.failing ? `${version}: internal error\n` : `${version}\n`);
        });
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      return server;
    }),
  );
  return {
    version,
    state,
    endpoints: servers.map((s) => ({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, tags: [version] })),
    close: () =>
      Promise.all(
        servers.map((s) => {
          s.closeAllConnections();
          return new Promise<void>((resolve) => s.close(() => resolve()));
        }),
      ),
  };
}

const subsets = { [SERVICE]: { v1: { tags: ['v1'] }, v2: { tags: ['v2'] } } };

/** The whole configuration for a split of `v2Percent` % to v2: `configure` replaces routes and subsets as a whole. */
const split = (v2Percent: number): MeshConfigInput => ({
  subsets,
  routes: {
    [SERVICE]: [
      {
        name: ROUTE,
        backends: [
          { subset: 'v1', weight: 100 - v2Percent },
          { subset: 'v2', weight: v2Percent },
        ],
      },
    ],
  },
});

/** Calls ended per backend of the route, and how many of them succeeded, as the snapshot has them (since the start). */
type Counts = Record<'v1' | 'v2', { calls: number; ok: number; weight: number | null }>;

function countsOf(snapshot: MeshSnapshot): Counts {
  const out: Counts = { v1: { calls: 0, ok: 0, weight: null }, v2: { calls: 0, ok: 0, weight: null } };
  const route = snapshot.services[SERVICE]?.routes.find((r) => r.name === ROUTE);
  for (const b of route?.backends ?? []) {
    if (b.backend === 'v1' || b.backend === 'v2') out[b.backend] = { calls: b.calls, ok: b.outcomes['success'] ?? 0, weight: b.weight };
  }
  return out;
}

/** What one step saw: the difference between two snapshots. */
interface Window {
  readonly v1: number;
  readonly v2: number;
  readonly total: number;
  readonly v2Errors: number;
  readonly v1Errors: number;
  readonly seconds: number;
}

function windowOf(from: Counts, to: Counts, seconds: number): Window {
  const v1 = to.v1.calls - from.v1.calls;
  const v2 = to.v2.calls - from.v2.calls;
  return {
    v1,
    v2,
    total: v1 + v2,
    v1Errors: v1 - (to.v1.ok - from.v1.ok),
    v2Errors: v2 - (to.v2.ok - from.v2.ok),
    seconds,
  };
}

const pct = (part: number, whole: number): string => (whole === 0 ? '-' : ((100 * part) / whole).toFixed(1));

/** Why v2 must be rolled back, from what a step saw so far; undefined while it looks healthy. */
function verdict(w: Window, v2Percent: number): string | undefined {
  if (w.v2Errors >= MIN_V2_ERRORS && w.v2Errors / w.v2 > ERROR_THRESHOLD) {
    return `v2 errors ${pct(w.v2Errors, w.v2)} % (${w.v2Errors} of ${w.v2}) > ${ERROR_THRESHOLD * 100} % over ${w.seconds.toFixed(1)} s`;
  }
  const expected = (w.total * v2Percent) / 100;
  if (expected >= MIN_EXPECTED_V2_CALLS && w.v2 < expected / 2) {
    return `v2 took ${w.v2} of the ~${Math.round(expected)} calls its weight gives it over ${w.seconds.toFixed(1)} s (the mesh routes around it: no usable endpoint)`;
  }
  return undefined;
}

async function main({ stepMs, adminPort, failAt }: Settings): Promise<number> {
  const [v1, v2] = await Promise.all([startVersion('v1', 2), startVersion('v2', 2)]);
  const mesh = createMesh({
    registry: staticRegistry({ [SERVICE]: [...v1.endpoints, ...v2.endpoints] }),
    ...split(0),
  });
  const admin = http.createServer(mesh.adminHandler());
  const shutdown = async (): Promise<void> => {
    await mesh.close();
    await Promise.all([v1.close(), v2.close()]);
    admin.closeAllConnections();
    if (admin.listening) await new Promise((resolve) => admin.close(resolve));
  };
  try {
    await new Promise<void>((resolve, reject) => {
      admin.once('error', reject);
      admin.listen(adminPort, '127.0.0.1', () => resolve());
    });
    return await run(mesh, v1, v2, admin, { stepMs, failAt });
  } finally {
    await shutdown();
  }
}

type Version = Awaited<ReturnType<typeof startVersion>>;

/** The load and the controller, until the plan is done or rolled back; the caller closes everything. */
async function run(mesh: Mesh, v1: Version, v2: Version, admin: http.Server, { stepMs, failAt }: Omit<Settings, 'adminPort'>): Promise<number> {
  const adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}/`;

  console.log(`dashboard: ${adminUrl}  (snapshot: ${adminUrl}snapshot)`);
  console.log(
    `canary: ${WORKERS} workers call '${SERVICE}' (v1: ${v1.endpoints.length} endpoints, v2: ${v2.endpoints.length}); ` +
      `plan ${PLAN.join(' -> ')} % to v2, ${stepMs} ms a step; v2 fails from ${failAt === undefined ? 'never' : `${failAt} %`}; ` +
      `rollback when v2's errors pass ${ERROR_THRESHOLD * 100} %`,
  );

  // The load: WORKERS loops until the controller is done, bounded in time and calls whatever happens.
  let stop = false;
  let calls = 0;
  let failedCalls = 0;
  const hardStop = AbortSignal.timeout(stepMs * (PLAN.length + 2) + 10_000);
  setMaxListeners(4 * WORKERS, hardStop);
  const worker = async (): Promise<void> => {
    while (!stop && !hardStop.aborted && calls < MAX_CALLS) {
      calls++;
      let ok = false;
      try {
        const res = await mesh.fetch(`http://${SERVICE}/order`, { signal: hardStop });
        await res.arrayBuffer();
        ok = res.ok;
      } catch {
        // no usable endpoint, a circuit open: counted in the route's outcomes too
      }
      if (!ok) {
        failedCalls++;
        // A call that fails fast (no usable endpoint, every breaker open) rejects without any I/O: a loop that
        // went straight on would never yield to the event loop, and no timer (the controller's steps) would run.
        await sleep(PAUSE_AFTER_FAILURE_MS);
      }
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, worker));

  let code = 0;
  const problem = (message: string): void => {
    console.error(`canary: ${message}`);
    code = 1;
  };
  // A call routed under the weights before a change can end just after it (a failing one waits out its retry
  // backoff, 25-250 ms): each window starts after a short settle. At most WORKERS calls can be in flight then.
  const settleMs = Math.min(250, Math.floor(stepMs / 5));
  const pollMs = Math.max(25, Math.floor((stepMs - settleMs) / 4));

  /** Applies a split, then watches it for one step (or, when `watch`, until v2 looks failing: then `failing` says why). */
  const step = async (label: string, v2Percent: number, watch: boolean): Promise<{ window: Window; failing: string | undefined }> => {
    const version = mesh.configure(split(v2Percent));
    const inForce = mesh.snapshot().config;
    if (inForce.version !== version) problem(`configure returned version ${version}, the snapshot has ${inForce.version}`);
    // The watch counts from the change (a failure in the settle is a failure); the shares from after the settle.
    const changedAt = countsOf(mesh.snapshot());
    const changed = performance.now();
    await sleep(settleMs);
    const base = countsOf(mesh.snapshot());
    const start = performance.now();
    let window = windowOf(base, base, 0);
    let failing: string | undefined;
    while (performance.now() - start < stepMs - settleMs && !hardStop.aborted) {
      await sleep(Math.min(pollMs, stepMs - settleMs - (performance.now() - start)));
      const now = countsOf(mesh.snapshot());
      window = windowOf(base, now, (performance.now() - start) / 1_000);
      for (const [name, want] of [['v1', 100 - v2Percent], ['v2', v2Percent]] as const) {
        if (now[name].weight !== null && now[name].weight !== want) problem(`the snapshot shows weight ${now[name].weight} for ${name}, configured ${want}`);
      }
      failing = watch ? verdict(windowOf(changedAt, now, (performance.now() - changed) / 1_000), v2Percent) : undefined;
      if (failing !== undefined) break;
    }
    console.log(
      `${label.padEnd(9)} config v${version}: weights v1 ${100 - v2Percent} % / v2 ${v2Percent} % | ` +
        `observed over ${window.seconds.toFixed(1)} s: v1 ${pct(window.v1, window.total)} % / v2 ${pct(window.v2, window.total)} % of ${window.total} calls | ` +
        `errors v1 ${pct(window.v1Errors, window.v1)} % (${window.v1Errors} of ${window.v1}), v2 ${pct(window.v2Errors, window.v2)} % (${window.v2Errors} of ${window.v2})`,
    );
    return { window, failing };
  };

  const applied: number[] = [];
  let rolledBackAt: number | undefined;
  let last: Window | undefined;
  try {
    for (const [i, percent] of PLAN.entries()) {
      if (percent === failAt) {
        v2.state.failing = true;
        console.log(`          v2 starts answering 500 to every request (a bad release, FAIL_AT=${failAt})`);
      }
      applied.push(percent);
      const { window, failing } = await step(`step ${i + 1}/${PLAN.length}`, percent, true);
      last = window;
      if (failing !== undefined) {
        rolledBackAt = percent;
        const states = (mesh.snapshot().services[SERVICE]?.endpoints ?? [])
          .filter((e) => v2.endpoints.some((x) => x.port === e.port))
          .map((e) => `${e.id} ${e.ejected ? 'ejected' : `breaker ${e.breaker}`}`);
        console.log(
          `rolled back at ${percent} %: ${failing} (v2 endpoints: ${states.join(', ')}); configuring v1 100 % / v2 0 %`,
        );
        last = (await step('rollback', 0, false)).window;
        break;
      }
    }
  } finally {
    stop = true;
    await load;
  }

  if (hardStop.aborted) problem('the run hit its time bound');
  if (last === undefined || last.total === 0) problem('no calls were measured in the last step');
  const w: Window = last ?? { v1: 0, v2: 0, total: 0, v1Errors: 0, v2Errors: 0, seconds: 0 };
  console.log(`calls: ${calls} made, ${failedCalls} failed as the callers saw them`);
  const outcome =
    rolledBackAt === undefined ? `no rollback; final v2 share ${pct(w.v2, w.total)} %` : `rolled back at ${rolledBackAt} %; final v1 share ${pct(w.v1, w.total)} %`;
  console.log(`canary: steps ${applied.join(',')}; ${outcome}`);
  if (failAt !== undefined && rolledBackAt === undefined) problem(`v2 failed from ${failAt} % but no rollback happened`);
  return code;
}

let options: Settings;
try {
  options = settings(process.env);
} catch (error) {
  console.error(`canary: ${(error as Error).message}`);
  process.exit(2);
}
main(options).then(
  (code) => void (process.exitCode = code),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
