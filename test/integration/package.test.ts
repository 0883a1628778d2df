// The published artifact, as a consumer gets it: build with the project's tsup config, `npm pack`, unpack
// into a scratch node_modules, then `require('proxyless')` (require(esm), Node >= 20.19) and
// `import('proxyless')` from child processes of the Node that runs this suite.
//
// The build goes to a scratch copy of the package, never to the work tree's dist/, so this suite does not race a
// developer's `npm run build` or the CI's `check:package`. The same holds for the fresh-clone check at the end: it
// packs a copy of the checkout (without dist/), where `prepack` builds.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
};

let scratch: string;
let consumer: string;
let packedFiles: string[];

function run(command: string, args: readonly string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

/** Runs a script with the Node that runs this suite; returns stdout (stderr is passed on in the error). */
function node(file: string): string {
  try {
    return run(process.execPath, [file], dirname(file));
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} failed: ${e.message}\nstdout: ${e.stdout ?? ''}\nstderr: ${e.stderr ?? ''}`);
  }
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'proxyless-package-'));
  const staged = join(scratch, 'package');
  mkdirSync(staged);
  for (const file of ['package.json', 'README.md', 'LICENSE']) {
    if (existsSync(join(root, file))) copyFileSync(join(root, file), join(staged, file));
  }

  // The project's tsup config, run from the root (entry, tsconfig), written into the staged package.
  const tsupBin = join(dirname(createRequire(join(root, 'package.json')).resolve('tsup/package.json')), 'dist/cli-default.js');
  run(process.execPath, [tsupBin, '--out-dir', join(staged, 'dist'), '--silent'], root);

  // `npm pack` applies `files` and `.npmignore` as a publish would.
  const packed = JSON.parse(
    run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], staged),
  ) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const packResult = packed[0]!;
  packedFiles = packResult.files.map((f) => f.path).sort();

  consumer = join(scratch, 'consumer');
  const installed = join(consumer, 'node_modules', pkg.name);
  mkdirSync(installed, { recursive: true });
  run('tar', ['-xzf', join(scratch, packResult.filename), '-C', installed, '--strip-components=1'], scratch);
  // The package's dependencies, as npm would hoist them beside it (their own dependencies resolve from the
  // work tree's node_modules, where the symlinks point).
  // undici too, as the application that uses `proxyless/undici` has it (an optional peer dependency).
  for (const dep of [...Object.keys(pkg.dependencies ?? {}), 'undici']) {
    const target = join(consumer, 'node_modules', dep);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(root, 'node_modules', dep), target, 'dir');
  }
}, 180_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships dist/index.js and dist/index.d.ts, and no sources or tests', () => {
    expect(packedFiles).toContain('package.json');
    expect(packedFiles).toContain('LICENSE');
    expect(packedFiles).toContain('dist/index.js');
    expect(packedFiles).toContain('dist/index.d.ts');
    expect(packedFiles.filter((f) => /^(src|test|bench|examples)\//.test(f))).toEqual([]);
  });

  it("require('proxyless') works from CommonJS (require(esm))", () => {
    const file = join(consumer, 'require.cjs');
    writeFileSync(
      file,
      `const m = require(${JSON.stringify(pkg.name)});
const mesh = m.createMesh({ registry: m.staticRegistry({ users: ['127.0.0.1:1'] }) });
console.log(JSON.stringify({
  createMesh: typeof m.createMesh,
  staticRegistry: typeof m.staticRegistry,
  MeshError: typeof m.MeshError,
  fetch: typeof mesh.fetch,
  resolved: require.resolve(${JSON.stringify(pkg.name)}),
}));
mesh.close();
`,
    );
    const out = JSON.parse(node(file)) as Record<string, string>;
    expect(out).toMatchObject({ createMesh: 'function', staticRegistry: 'function', MeshError: 'function', fetch: 'function' });
    // Resolved by package name through `exports`, to the unpacked tarball's build.
    expect(out.resolved).toBe(realpathSync(join(consumer, 'node_modules', pkg.name, 'dist', 'index.js')));
  });

  it("import('proxyless') works from ESM", () => {
    const file = join(consumer, 'import.mjs');
    writeFileSync(
      file,
      `import { createMesh, staticRegistry } from ${JSON.stringify(pkg.name)};
console.log(JSON.stringify({ createMesh: typeof createMesh, staticRegistry: typeof staticRegistry }));
`,
    );
    expect(JSON.parse(node(file))).toEqual({ createMesh: 'function', staticRegistry: 'function' });
  });

  it("import('proxyless/undici') works, and 'proxyless' alone never loads undici", () => {
    expect(packedFiles).toContain('dist/undici.js');
    expect(packedFiles).toContain('dist/undici.d.ts');
    const file = join(consumer, 'undici.mjs');
    writeFileSync(
      file,
      `import { createRequire } from 'node:module';
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => /[\\/]undici[\\/]/.test(k));
const core = await import(${JSON.stringify(pkg.name)});
const mesh = core.createMesh({ registry: core.staticRegistry({ users: ['127.0.0.1:1'] }) });
await mesh.call('users', () => 'ok');
const before = loaded();
const { meshDispatcher, meshInterceptor } = await import(${JSON.stringify(`${pkg.name}/undici`)});
const dispatcher = meshDispatcher(mesh);
console.log(JSON.stringify({ before, after: loaded(), meshDispatcher: typeof meshDispatcher, meshInterceptor: typeof meshInterceptor, dispatch: typeof dispatcher.dispatch }));
await mesh.close();
`,
    );
    expect(JSON.parse(node(file))).toEqual({ before: false, after: true, meshDispatcher: 'function', meshInterceptor: 'function', dispatch: 'function' });
  });
});

/** A registry an adapter author might write, backed by a Map; `broken` makes it lose every change after the first. */
const userRegistry = (broken: boolean): string => `
const lists = new Map();
let failing = false, sets = 0;
export const hooks = {
  setup() {
    lists.clear();
    failing = false;
    sets = 0;
  },
  set(service, endpoints) {
    if (${broken} && sets++ > 1) return;
    lists.set(service, endpoints.map((e, i) => toEndpoint(e, 'set[' + i + ']')));
  },
  fail: () => void (failing = true),
  recover: () => void (failing = false),
};
export const makeRegistry = () => ({
  async resolve(service) {
    if (failing) throw new Error('registry down');
    return lists.get(service) ?? [];
  },
});
`;

describe("the packed 'proxyless/testing' kit, in a fresh project", () => {
  it('ships dist/testing.js and its types', () => {
    expect(packedFiles).toEqual(expect.arrayContaining(['dist/testing.js', 'dist/testing.d.ts']));
  });

  /** Writes the adapter and a node:test file running the contract on it; returns node --test's TAP output and exit code. */
  function nodeTest(broken: boolean): { out: string; code: number } {
    const dir = mkdtempSync(join(consumer, 'node-test-'));
    writeFileSync(join(dir, 'registry.mjs'), `import { toEndpoint } from ${JSON.stringify(pkg.name)};\n${userRegistry(broken)}`);
    writeFileSync(
      join(dir, 'contract.test.mjs'),
      `import * as test from 'node:test';
import { registryContract } from ${JSON.stringify(`${pkg.name}/testing`)};
import { hooks, makeRegistry } from './registry.mjs';
registryContract('map registry', makeRegistry, { ...hooks, test });
`,
    );
    try {
      return { out: run(process.execPath, ['--test', '--test-reporter=tap', 'contract.test.mjs'], dir), code: 0 };
    } catch (error) {
      const e = error as { stdout?: string; status?: number };
      return { out: e.stdout ?? '', code: e.status ?? -1 };
    }
  }
  const tally = (tap: string, key: string): number => Number(new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tap)?.[1] ?? NaN);

  it('runs under node:test: every case passes for a correct registry (the watch case skips: it has no watch)', () => {
    const { out, code } = nodeTest(false);
    expect(code, out).toBe(0);
    expect(tally(out, 'pass')).toBeGreaterThanOrEqual(10);
    expect(tally(out, 'fail')).toBe(0);
    expect(out).toMatch(/watch\(\), when offered.*# SKIP/);
  });

  it('fails under node:test for a registry that loses changes', () => {
    const { out, code } = nodeTest(true);
    expect(code).not.toBe(0);
    expect(tally(out, 'fail')).toBeGreaterThan(0);
    expect(out).toMatch(/not ok \d+ - resolve\(\) sees every later change/);
  });

  it('runs under vitest, from the package name', () => {
    const dir = mkdtempSync(join(consumer, 'vitest-'));
    writeFileSync(join(dir, 'registry.mjs'), `import { toEndpoint } from ${JSON.stringify(pkg.name)};\n${userRegistry(false)}`);
    writeFileSync(
      join(dir, 'contract.test.mjs'),
      `import * as vitest from 'vitest';
import { registryContract } from ${JSON.stringify(`${pkg.name}/testing`)};
import { hooks, makeRegistry } from './registry.mjs';
registryContract('map registry', makeRegistry, { ...hooks, test: vitest });
`,
    );
    const vitestLink = join(consumer, 'node_modules', 'vitest');
    if (!existsSync(vitestLink)) symlinkSync(join(root, 'node_modules', 'vitest'), vitestLink, 'dir');
    const vitestBin = join(root, 'node_modules', 'vitest', 'vitest.mjs');
    const report = join(dir, 'report.json');
    // A config of its own, so vitest does not go looking for one above the scratch project.
    writeFileSync(join(dir, 'vitest.config.mjs'), 'export default {};\n');
    run(process.execPath, [vitestBin, 'run', '--root', dir, '--config', join(dir, 'vitest.config.mjs'), '--reporter=json', `--outputFile=${report}`], dir);
    const r = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number };
    expect(r.numFailedTests).toBe(0);
    expect(r.numPassedTests).toBeGreaterThanOrEqual(10);
    expect(r.numPendingTests).toBe(1); // watch(): this registry has none
  }, 60_000);
});

/** The files of the checkout as a fresh clone has them: tracked, plus new files not ignored (no dist/, no node_modules). */
function checkoutFiles(): string[] | undefined {
  try {
    return run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root)
      .split('\0')
      .filter((f) => f !== '' && existsSync(join(root, f)));
  } catch {
    return undefined; // not a git checkout: the whole tree below is copied instead, minus what .gitignore lists
  }
}

describe('npm pack on a fresh clone', () => {
  // What `npm pack --dry-run` lists in a checkout with no dist/: `prepack` (npm run build) must run tsup first,
  // or the tarball holds README.md and package.json only. A copy of the checkout, so the work tree's dist/ (if
  // any) neither hides a missing prepack nor gets rebuilt under a developer's feet.
  it('builds before packing and ships dist/index.js, dist/index.d.ts and LICENSE, and no sources or tests', () => {
    const clone = mkdtempSync(join(tmpdir(), 'proxyless-clone-'));
    try {
      const files = checkoutFiles();
      if (files) {
        for (const f of files) {
          mkdirSync(dirname(join(clone, f)), { recursive: true });
          copyFileSync(join(root, f), join(clone, f));
        }
      } else {
        const ignored = /^(node_modules|dist|coverage|docs|test-artifacts|\.git)$|\.tgz$/;
        cpSync(root, clone, { recursive: true, filter: (src) => src === root || !ignored.test(src.slice(root.length + 1).split('/')[0]!) });
      }
      expect(existsSync(join(clone, 'dist'))).toBe(false);
      symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'), 'dir');

      // The build's own output comes first on stdout (lifecycle scripts write there); the JSON report follows.
      const out = run('npm', ['pack', '--dry-run', '--json'], clone);
      const report = JSON.parse(out.slice(out.search(/^\[$/m))) as Array<{ files: Array<{ path: string }> }>;
      const paths = report[0]!.files.map((f) => f.path).sort();
      expect(paths).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']));
      expect(paths.filter((f) => /^(src|test|bench|examples)\//.test(f))).toEqual([]);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  }, 180_000);
});
