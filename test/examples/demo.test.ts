// `npm run demo` as a new user runs it, shortened: examples/demo.ts in a child process with --duration 4. It exits 0
// by itself, names the endpoints, reports p50/p99 per endpoint beside the EWMA with the reason they differ, checks
// its P2C story against its own numbers, and writes a well-formed SVG chart whose path it prints. --help lists
// every flag with its default and exits 0; a bad flag exits 2 naming it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoOptions } from '../../examples/demo-options.js';
import { runScript } from '../helpers/run-script.js';
import { allElements, allText, parseXml } from './demo-xml.js';

const NAMES = ['fast-1', 'fast-2', 'slow', 'flaky'];

describe('npm run demo -- --duration 4', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof runScript>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-demo-test-'));
    // 4 s of load, plus start-up and the summary; killed (and failed) if it does not exit by itself in 40 s.
    run = await runScript('examples/demo.ts', 40_000, ['--duration', '4', '--chart', join(dir, 'chart.svg')]);
  }, 60_000);
  afterAll(() => void (dir && rmSync(dir, { recursive: true, force: true })));

  it('exits 0 by itself, and says first where the dashboard is and that it closes with the load', () => {
    expect(run.signal, run.out).toBeNull();
    expect(run.code, run.out).toBe(0);
    expect(run.out.split('\n')[0]).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\/ .*closes when the load ends \(add --keep to keep it\)$/);
    expect(run.out).toContain('slow gets about 1 attempt in 6');
  });

  it('reports attempts, p50, p99 and EWMA per endpoint, by name, and explains the EWMA', () => {
    const header = run.out.split('\n').find((l) => l.startsWith('| endpoint '))!;
    expect(header.split('|').map((c) => c.trim())).toEqual(['', 'endpoint', 'attempts', 'successes', 'failures', 'share', 'p50 ms', 'p99 ms', 'EWMA ms', 'state at the end', '']);
    for (const name of NAMES) {
      const row = run.out.split('\n').find((l) => l.startsWith(`| ${name} `));
      expect(row, name).toBeDefined();
      const [, , attempts, , , , p50, p99, ewma] = row!.split('|').map((c) => c.trim());
      expect(Number(attempts), `${name} attempts`).toBeGreaterThan(0);
      expect(Number(p50), `${name} p50`).toBeGreaterThan(0);
      expect(Number(p99), `${name} p99`).toBeGreaterThanOrEqual(Number(p50));
      expect(Number(ewma), `${name} EWMA`).toBeGreaterThan(0);
    }
    // slow answers in 82-85 ms: its attempts' p50 says so (the fast ones are well under).
    const p50Of = (name: string): number => Number(run.out.split('\n').find((l) => l.startsWith(`| ${name} `))!.split('|')[6]);
    expect(p50Of('slow')).toBeGreaterThanOrEqual(80);
    expect(p50Of('fast-1')).toBeLessThan(p50Of('slow') / 2);
    expect(run.out).toContain('EWMA ms is the balancer\'s peak-EWMA cost estimate');
  });

  it("measures slow's share while flaky is alive and after it is ejected, the claim it makes", () => {
    const m = /slow's share of attempts: ([\d.]+)% while flaky was alive .*?, ([\d.]+)% after flaky was ejected/.exec(run.out);
    expect(m, run.out).not.toBeNull();
    const [alive, after] = [Number(m![1]), Number(m![2])];
    // P2C: slow+flaky is 1 pair in 6 (16.7 %); slow wins most of those. Once flaky is out, slow loses to the fast two.
    expect(alive).toBeGreaterThan(6);
    expect(alive).toBeLessThan(25);
    expect(after).toBeLessThan(alive);
    // flaky's 503s are spread evenly (never five in a row), so it is ejected only once it is dead, and the "alive"
    // window really had four endpoints in service.
    const times = /t < ([\d.]+)s;.*t >= ([\d.]+)s\)/.exec(run.out)!;
    expect(Number(times[2]), run.out).toBeGreaterThanOrEqual(Number(times[1]));
  });

  it('prints the chart path, and the file is an SVG with every endpoint name, axis labels and a legend', () => {
    const path = /^chart: (\S+) /m.exec(run.out)?.[1];
    expect(path).toBe(join(dir, 'chart.svg'));
    expect(existsSync(path!)).toBe(true);
    const root = parseXml(readFileSync(path!, 'utf8'));
    expect(root.name).toBe('svg');
    const texts = allText(root);
    const legend = allElements(root).filter((e) => e.attributes['class'] === 'legend-name').map((e) => e.text);
    expect(legend).toEqual(NAMES);
    expect(texts).toEqual(expect.arrayContaining(['share of attempts, %', 'latency, ms (log scale)', 'time since start, s', 'p50', 'p99', 'flaky died']));
    expect(texts.some((t) => /^\d+(\.\d)?% of attempts; p50 [\d.]+ ms, p99 [\d.]+ ms$/.test(t))).toBe(true);
    // One point per second of the load: 4 share points for fast-1.
    const firstPath = allElements(root).find((e) => e.name === 'path')!;
    expect(firstPath.attributes['d']!.match(/[ML]/g)).toHaveLength(4);
  });
});

describe('the demo command line', () => {
  it('keeps the dashboard up when interactive without --duration, or with --keep; a bounded run exits', () => {
    const keep = (args: string[], tty: boolean): boolean => (demoOptions(args, tty) as { keep: boolean }).keep;
    expect(keep([], true)).toBe(true);
    expect(keep([], false)).toBe(false);
    expect(keep(['--duration', '5'], true)).toBe(false);
    expect(keep(['--duration', '5', '--keep'], false)).toBe(true);
    expect(demoOptions(['--help'], true)).toBe('help');
    expect(demoOptions([], false)).toMatchObject({ durationS: 15, adminPort: 0, chart: join(tmpdir(), 'proxyless-demo.svg') });
    expect(() => demoOptions(['--admin-port', '70000'], false)).toThrow(/--admin-port must be a port number/);
    expect(() => demoOptions(['--chart', ''], false)).toThrow(/--chart must be a file path/);
    expect(() => demoOptions(['--nosuch'], false)).toThrow(/nosuch/);
  });

  it('--help lists every flag with its default, and exits 0 without running', async () => {
    const { code, out } = await runScript('examples/demo.ts', 20_000, ['--help']);
    expect(code, out).toBe(0);
    for (const flag of ['--duration <seconds>', '--keep', '--admin-port <port>', '--chart <path>', '--help']) expect(out).toContain(flag);
    expect(out).toMatch(/--duration <seconds>.*\[15\]/);
    expect(out).toMatch(/--admin-port <port>.*\[0\]/);
    expect(out).toContain(`[${join(tmpdir(), 'proxyless-demo.svg')}]`);
    expect(out).toMatch(/\[on when run in a terminal without --duration; off otherwise/);
    expect(out).not.toContain('dashboard:');
  }, 30_000);

  it('refuses a bad flag value with exit 2, naming the flag', async () => {
    const { code, out } = await runScript('examples/demo.ts', 20_000, ['--duration', '0']);
    expect(code).toBe(2);
    expect(out).toContain('demo: --duration must be seconds in (0, 50], got 0');
  }, 30_000);
});
