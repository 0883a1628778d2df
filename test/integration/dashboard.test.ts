// Headless Chromium (driven by playwright-core) opens the admin dashboard while traffic runs, and checks that
// endpoints, states and numbers are visible and change, and that the configuration in force (its version, the
// routes with their weights against the observed shares, faults and mirrors) is shown, escaped. Saves test-artifacts/dashboard.png; with
// UPDATE_README_SCREENSHOT=1 also the README's assets/dashboard.png. Skipped without Chromium, unless
// REQUIRE_BROWSER=1 (CI), which fails. The last suite runs `npm run demo` itself (examples/demo.ts --keep) and
// checks that its dashboard shows the demo's endpoint names and stays up after the load, and that its SVG chart
// parses and renders in Chromium.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type MeshConfigInput } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { findBinary, required, waitFor } from '../observe/binaries.js';
import { startLiveMesh, type LiveMesh } from '../observe/live-mesh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const chromiumBin = findBinary('chromium', process.env.CHROMIUM_PATH ?? '/usr/bin/chromium');
/** Without the background-networking flags, Chromium keeps trying to reach hosts this machine cannot reach. */
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A fresh Chromium profile and page that records page errors, console errors and failed requests. */
async function openBrowser(problems: string[]): Promise<{ profile: string; context: BrowserContext; page: Page }> {
  const profile = mkdtempSync(join(tmpdir(), 'proxyless-chromium-'));
  const { chromium } = await import('playwright-core');
  // A fresh --user-data-dir: playwright takes it as the persistent context's directory.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumBin!,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1400, height: 640 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  return { profile, context, page };
}

if (chromiumBin === undefined && required('REQUIRE_BROWSER')) {
  describe('the dashboard in a browser', () => {
    it('has Chromium installed (REQUIRE_BROWSER=1)', () => {
      throw new Error('REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (apt-get install chromium)');
    });
  });
}

describe.skipIf(chromiumBin === undefined)('the dashboard in headless Chromium', () => {
  let live: LiveMesh;
  let profile: string;
  let context: BrowserContext | undefined;
  let page: Page;
  const problems: string[] = [];

  /** Text of one field of one endpoint row of `api`. */
  const field = (id: string, name: string): Promise<string> =>
    page.locator(`section[data-service="api"] tr[data-endpoint="${id}"] [data-field="${name}"]`).innerText();

  beforeAll(async () => {
    live = await startLiveMesh({ ids: 'name' });
    ({ profile, context, page } = await openBrowser(problems));
    await page.goto(`${live.adminUrl}/`);
    live.startTraffic(4, 60_000);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await live?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  }, 30_000);

  it('shows every endpoint with its zone, weight, state and numbers, refreshed every second', async () => {
    await page.locator('#status.live').waitFor({ timeout: 10_000 });
    for (const id of Object.values(live.ids)) {
      await page.locator(`section[data-service="api"] tr[data-endpoint="${id}"]`).waitFor({ timeout: 10_000 });
    }
    expect(await field('slow', 'zone')).toBe('zone-a');
    expect(await field('fast-2', 'zone')).toBe('zone-b');
    expect(await field('fast-1', 'weight')).toBe('2');
    expect(await page.locator('section[data-service="users"]').count()).toBe(1);

    const before = Number(await field('fast-1', 'requests'));
    const updated = await page.locator('#updated').innerText();
    await waitFor('the attempt count to grow on the page', 10_000, async () =>
      Number(await field('fast-1', 'requests')) > before ? true : undefined,
    );
    expect(await page.locator('#updated').innerText()).not.toBe(updated);
    expect(await page.locator('section[data-service="api"] [data-field="rps"]').first().innerText()).toMatch(/^\d+$/);
  }, 30_000);

  it('makes the slow and the failing endpoint obvious', async () => {
    const ms = async (id: string) => Number.parseFloat(await field(id, 'ewma'));
    // Peak EWMA takes event-loop stalls of this busy test process at once and lets them decay over 10 s, so
    // the fast endpoints read well above their 1-5 ms; the slow one (60-80 ms) still reads higher.
    await waitFor('the slow endpoint to stand out by EWMA', 20_000, async () => {
      const slow = await ms('slow');
      return slow > 1.2 * (await ms('fast-1')) && slow > 1.2 * (await ms('fast-2')) ? true : undefined;
    });
    const flagged = await waitFor('the flaky endpoint to be flagged', 20_000, async () => {
      const state = await field('flaky', 'state');
      return ['breaker open', 'ejected', 'half-open'].includes(state) ? state : undefined;
    });
    expect(['breaker open', 'ejected', 'half-open']).toContain(flagged);
    expect(await field('fast-2', 'state')).toBe('healthy');
    // The row of a failing endpoint is marked (red or amber background), a fast healthy one is not red.
    expect(await page.locator('section[data-service="api"] tr[data-endpoint="flaky"]').getAttribute('class')).toMatch(/bad|warn/);
    expect((await page.locator('section[data-service="api"] tr[data-endpoint="fast-2"]').getAttribute('class')) ?? '').not.toMatch(/bad/);
    // Sparklines draw history.
    const spark = page.locator('tr[data-endpoint="slow"] [data-field="ewma-spark"] polyline');
    await waitFor('sparklines with history', 10_000, async () => ((await spark.getAttribute('points'))!.split(' ').length > 3 ? true : undefined));

    mkdirSync(join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-artifacts/dashboard.png'), fullPage: true });
    if (required('UPDATE_README_SCREENSHOT')) {
      // Let the start-up peaks (Chromium launching on the same cores) decay out of the EWMA first.
      await new Promise((resolve) => setTimeout(resolve, 25_000));
      mkdirSync(join(root, 'assets'), { recursive: true });
      await page.screenshot({ path: join(root, 'assets/dashboard.png'), fullPage: true });
    }
    expect(problems).toEqual([]);
  }, 90_000);
});

// Text a config source could send: it must reach the page as text, never as markup.
const HOSTILE_HEADER = `<img src=x onerror="document.title='pwned'">`;
const HOSTILE_QUERY = `</script><b id="pwned">x</b>`;

describe.skipIf(chromiumBin === undefined)('the dashboard shows the configuration in force', () => {
  let mesh: Mesh;
  let backends: Backend[];
  let admin: http.Server;
  let profile: string;
  let context: BrowserContext | undefined;
  let page: Page;
  let stop = false;
  let traffic: Promise<void[]> = Promise.resolve([]);
  const problems: string[] = [];

  const subsets = { shop: { v1: { tags: ['v1'] }, v2: { tags: ['v2'] } } };
  /** Probe never matches the traffic (its header and query are never sent); canary takes every call. */
  const config = (v1: number, v2: number): MeshConfigInput => ({
    subsets,
    routes: {
      shop: [
        { name: 'probe', match: [{ headers: { 'x-probe': HOSTILE_HEADER }, query: { q: HOSTILE_QUERY } }], backends: [{ subset: 'v2' }] },
        {
          name: 'canary',
          backends: [{ subset: 'v1', weight: v1 }, { subset: 'v2', weight: v2 }],
          fault: { abort: { status: 503, percent: 10 } },
          mirror: { subset: 'v2', percent: 50 },
        },
      ],
      later: [{ name: 'all' }],
    },
  });
  const row = (route: string, backend: string) => page.locator(`section[data-service="shop"] [data-route="${route}"] tr[data-backend="${backend}"]`);
  const cellOf = (route: string, backend: string, name: string): Promise<string> => row(route, backend).locator(`[data-field="${name}"]`).innerText();
  const percentIn = (text: string): number => Number.parseFloat(text);

  beforeAll(async () => {
    backends = await Promise.all([1, 2, 3, 4].map(() => startBackend((_req, res) => res.end('ok'))));
    mesh = createMesh({
      registry: staticRegistry({
        shop: backends.map((b, i) => ({ host: '127.0.0.1', port: b.port, tags: [i < 2 ? 'v1' : 'v2'] })),
        later: [backends[0]!.address],
      }),
      ...config(80, 20),
    });
    admin = http.createServer(mesh.adminHandler());
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
    ({ profile, context, page } = await openBrowser(problems));
    // Bounded: 4 loops, until the suite ends or 60 s.
    const until = Date.now() + 60_000;
    const worker = async (): Promise<void> => {
      while (!stop && Date.now() < until) {
        const res = await mesh.fetch('http://shop/cart').catch(() => undefined);
        await res?.arrayBuffer();
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    };
    traffic = Promise.all(Array.from({ length: 4 }, worker));
    await page.goto(`http://127.0.0.1:${(admin.address() as AddressInfo).port}/`);
  }, 60_000);

  afterAll(async () => {
    stop = true;
    await traffic;
    await context?.close();
    await mesh?.close();
    admin?.closeAllConnections();
    await new Promise((resolve) => (admin ? admin.close(resolve) : resolve(undefined)));
    await Promise.all((backends ?? []).map((b) => b.close()));
    if (profile) rmSync(profile, { recursive: true, force: true });
  }, 30_000);

  it('shows the config version and each route: weights, configured and observed shares, fault, mirror', async () => {
    await page.locator('#status.live').waitFor({ timeout: 10_000 });
    expect(await page.locator('#config [data-field="config-version"]').innerText()).toBe(String(mesh.config().version));
    await row('canary', 'v2').waitFor({ timeout: 10_000 });
    expect(await cellOf('canary', 'v1', 'weight')).toBe('80');
    expect(await cellOf('canary', 'v2', 'weight')).toBe('20');
    expect(await cellOf('canary', 'v1', 'share-configured')).toBe('80.0%');
    expect(await cellOf('canary', 'v2', 'share-configured')).toBe('20.0%');
    // Both backends get calls over a poll: an observed share strictly between 0 and 100 %.
    await waitFor('an observed share for v2 between 0 and 100 %', 10_000, async () => {
      const v2 = percentIn(await cellOf('canary', 'v2', 'share-observed'));
      return v2 > 0 && v2 < 100 ? true : undefined;
    });
    expect(Number(await cellOf('canary', 'v1', 'calls'))).toBeGreaterThan(0);
    const faults = page.locator('section[data-service="shop"] [data-route="canary"] [data-field="faults"]');
    expect(await faults.innerText()).toMatch(/^fault: abort 503 on 10% · injected: delay 0 \(.*\), abort \d+ \(.*\)$/);
    await waitFor('injected aborts counted', 10_000, async () => (/abort [1-9]\d* \(/.test(await faults.innerText()) ? true : undefined));
    const mirrors = page.locator('section[data-service="shop"] [data-route="canary"] [data-field="mirrors"]');
    expect(await mirrors.innerText()).toMatch(/^mirror: v2, 50% · sent \d+ \(.*\), succeeded \d+, failed \d+$/);
    // A service with routes that was never called has its section, with its route.
    expect(await page.locator('section[data-service="later"] [data-route="all"] tr[data-backend="*"]').count()).toBe(1);
  }, 30_000);

  it('follows a configure: the new version, the new weights, and the observed share goes where they say', async () => {
    const version = mesh.configure(config(0, 100));
    await waitFor('the new version on the page', 10_000, async () =>
      (await page.locator('#config [data-field="config-version"]').innerText()) === String(version) ? true : undefined,
    );
    expect(await page.locator('#config [data-field="config-changed"]').count()).toBe(1);
    expect(await cellOf('canary', 'v1', 'weight')).toBe('0');
    expect(await cellOf('canary', 'v2', 'share-configured')).toBe('100%');
    // Once the calls routed before the change have ended, a whole poll goes to v2.
    await waitFor('every observed call on v2', 10_000, async () => ((await cellOf('canary', 'v2', 'share-observed')) === '100%' ? true : undefined));
    expect(await cellOf('canary', 'v1', 'share-observed')).toBe('0%');
  }, 30_000);

  it('puts names and match values from the configuration in as text, never as markup', async () => {
    const match = await page.locator('section[data-service="shop"] [data-route="probe"] [data-field="match"]').innerText();
    expect(match).toBe(`header x-probe = ${HOSTILE_HEADER} and query q = ${HOSTILE_QUERY}`);
    expect(await page.locator('#pwned').count()).toBe(0);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.title()).toBe('proxyless mesh');
    mkdirSync(join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-artifacts/dashboard-routes.png'), fullPage: true });
    expect(problems).toEqual([]);
  }, 30_000);
});

/** The demo in a child process (as `npm run demo -- ...` runs it), its output collected as it comes. */
function startDemo(args: readonly string[]): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples/demo.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

describe.skipIf(chromiumBin === undefined)("the demo's dashboard and chart in headless Chromium", () => {
  const DEMO_NAMES = ['fast-1', 'fast-2', 'slow', 'flaky'];
  let demo: ReturnType<typeof startDemo> | undefined;
  let dir: string;
  let profile: string;
  let context: BrowserContext | undefined;
  let page: Page;
  let url: string;
  const problems: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-demo-dashboard-'));
    // 4 s of load, then --keep holds the dashboard until SIGINT (afterAll sends it; the child is killed if it hangs).
    demo = startDemo(['--duration', '4', '--keep', '--chart', join(dir, 'chart.svg')]);
    url = await waitFor('the demo to print its dashboard URL', 20_000, async () => /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/) /m.exec(demo!.out())?.[1]);
    ({ profile, context, page } = await openBrowser(problems));
    await page.goto(url);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    if (demo && demo.child.exitCode === null) {
      demo.child.kill('SIGINT');
      const killer = setTimeout(() => demo!.child.kill('SIGKILL'), 10_000);
      await demo.exited;
      clearTimeout(killer);
    }
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  /** The endpoint rows of `api` on the page, by their id cell's first line. */
  const shownNames = async (): Promise<string[]> =>
    (await page.locator('section[data-service="api"] tr[data-endpoint] [data-field="id"]').allInnerTexts()).map((t) => t.split('\n')[0]!.trim());

  it("shows the demo's endpoint names, with their address under each, while the load runs", async () => {
    await page.locator('#status.live').waitFor({ timeout: 10_000 });
    await waitFor('the four endpoints on the page', 10_000, async () => ((await shownNames()).length === 4 ? true : undefined));
    expect(await shownNames()).toEqual(DEMO_NAMES);
    for (const name of DEMO_NAMES) {
      const addr = await page.locator(`section[data-service="api"] tr[data-endpoint="${name}"] .addr`).innerText();
      expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    }
  }, 30_000);

  it('stays up after the load ends (--keep), still serving the names, and says so', async () => {
    await waitFor('the end of the load', 30_000, async () => (demo!.out().includes('The load has ended; the dashboard stays at') ? true : undefined));
    expect(demo!.child.exitCode).toBeNull();
    const updated = await page.locator('#updated').innerText();
    await waitFor('a poll after the load', 10_000, async () => ((await page.locator('#updated').innerText()) !== updated ? true : undefined));
    expect(await page.locator('#status').innerText()).toBe('live');
    expect(await shownNames()).toEqual(DEMO_NAMES);
    mkdirSync(join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-artifacts/dashboard-demo.png'), fullPage: true });
    expect(problems).toEqual([]);
  }, 60_000);

  it("opens the demo's SVG chart: Chromium's XML parser takes it, and its names and axis labels render", async () => {
    const path = /^chart: (\S+) /m.exec(demo!.out())?.[1];
    expect(path).toBe(join(dir, 'chart.svg'));
    await page.goto(pathToFileURL(path!).href);
    const seen = await page.evaluate(() => ({
      root: document.documentElement.localName,
      parserError: document.getElementsByTagName('parsererror').length,
      legend: [...document.querySelectorAll('text.legend-name')].map((t) => ({ name: t.textContent, width: (t as SVGTextElement).getComputedTextLength() })),
      labels: [...document.querySelectorAll('text')].map((t) => t.textContent),
      paths: document.querySelectorAll('path').length,
    }));
    expect(seen.root).toBe('svg');
    expect(seen.parserError).toBe(0);
    expect(seen.legend.map((l) => l.name)).toEqual(DEMO_NAMES);
    for (const l of seen.legend) expect(l.width, l.name ?? '').toBeGreaterThan(10); // laid out, not empty
    expect(seen.labels).toEqual(expect.arrayContaining(['share of attempts, %', 'latency, ms (log scale)', 'time since start, s']));
    expect(seen.paths).toBeGreaterThanOrEqual(DEMO_NAMES.length * 3);
    // The same text must parse as image/svg+xml in the page's own DOMParser too (it reports errors as a document).
    const source = readFileSync(path!, 'utf8');
    expect(await page.evaluate((s) => new DOMParser().parseFromString(s, 'image/svg+xml').getElementsByTagName('parsererror').length, source)).toBe(0);
    await page.screenshot({ path: join(root, 'test-artifacts/demo-chart.png') });
  }, 30_000);

  it('exits 0 on Ctrl-C (SIGINT) after the load, closing everything', async () => {
    demo!.child.kill('SIGINT');
    const code = await Promise.race([demo!.exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000))]);
    expect(code, demo!.out()).toBe(0);
  }, 20_000);
});
