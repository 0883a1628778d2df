import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['--import', 'tsx', 'examples/canary.ts'], { env: { ...process.env, STEP_MS: '3000', ADMIN_PORT: '0' } });
let out = '';
child.stdout.on('data', (c) => (out += c)); child.stderr.on('data', (c) => (out += c));
while (!/dashboard: (\S+)/.test(out)) await new Promise((r) => setTimeout(r, 50));
const url = /dashboard: (\S+)/.exec(out)[1];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--headless', '--disable-gpu'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 700 } });
page.on('pageerror', (e) => console.log('pageerror', e.message, e.stack));
page.on('console', (m) => console.log('console', m.type(), m.text()));
page.on('requestfailed', (r) => console.log('failed', r.url(), r.failure()?.errorText));
page.on('response', (r) => console.log('resp', r.url(), r.status()));
await page.goto(url);
for (const [i, t] of [[1, 5000], [2, 5200]].entries()) { await new Promise((r) => setTimeout(r, t)); await page.screenshot({ path: `/tmp/canary-${i}.png`, fullPage: true }); }
await browser.close();
await new Promise((r) => child.on('close', r));
