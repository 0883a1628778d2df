// Headless Chromium (driven by playwright-core) opens the admin dashboard while traffic runs, and checks that
// endpoints, states and numbers are visible and change. Saves test-artifacts/dashboard.png; with
// UPDATE_README_SCREENSHOT=1 also the README's assets/dashboard.png. Skipped without Chromium, unless
// REQUIRE_BROWSER=1 (CI), which fails.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    profile = mkdtempSync(join(tmpdir(), 'proxyless-chromium-'));
    const { chromium } = await import('playwright-core');
    // A fresh --user-data-dir: playwright takes it as the persistent context's directory.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumBin!,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1400, height: 640 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
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
