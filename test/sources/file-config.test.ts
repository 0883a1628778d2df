/**
 * fileConfig against the real filesystem and real time: the first read, the three ways a file gets rewritten
 * (in place, rename over it, a ConfigMap's `..data` swap), bad and missing files, and that unsubscribing leaves
 * no watcher or timer behind. Waits are bounded polls; "nothing was pushed" is shown by ordering (a later good
 * write is the next push), not by sleeping.
 */
import { createHook } from 'node:async_hooks';
import { mkdtemp, mkdir, open, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MeshConfigInput } from '../../src/config/types.js';
import { fileConfig } from '../../src/sources/file-config.js';

// A switch to make fs.watch deaf, as it is on filesystems that send no events, to test the stat poll alone; and
// a count of the reads fileConfig finished (it opens with 'r'), to know that it saw a write that pushes nothing.
const deaf = vi.hoisted(() => ({ on: false }));
const reads = vi.hoisted(() => ({ done: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const close = handle.close.bind(handle);
    if (args[1] === 'r') handle.close = () => close().then(() => void reads.done++);
    return handle;
  }) as typeof real.open;
  return { ...real, default: { ...real, open }, open };
});
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const { EventEmitter } = await import('node:events');
  const watch = ((...args: Parameters<typeof real.watch>) => {
    if (!deaf.on) return real.watch(...args);
    const silent = Object.assign(new EventEmitter(), { close() {}, ref: () => silent, unref: () => silent });
    return silent;
  }) as unknown as typeof real.watch;
  return { ...real, default: { ...real, watch }, watch };
});

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'proxyless-file-config-'));
  file = join(dir, 'mesh.json');
  deaf.on = false;
});
afterEach(async () => {
  stops.splice(0).forEach((stop) => stop());
  await rm(dir, { recursive: true, force: true });
});

/** Unsubscribes still open when a test ends (a failed assertion), so that no watcher outlives its test. */
const stops: (() => void)[] = [];

/** Polls `check` every 10 ms until it holds or `ms` pass; the caller then asserts, for a readable failure. */
async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

function follow(options?: Parameters<typeof fileConfig>[1], path = file) {
  const updates: MeshConfigInput[] = [];
  const errors: Error[] = [];
  const stop = fileConfig(path, options).watch((c) => updates.push(c), (e) => errors.push(e));
  stops.push(stop);
  return { updates, errors, stop };
}

const A = { defaults: { timeout: { totalMs: 1_000 } } };
const B = { services: { api: { retry: { retries: 2 } } } };
const C = { routes: { api: [{ name: 'all' }] }, subsets: { api: { v2: { tags: ['v2'] } } } };
const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
/** Rewrites the file in place: truncate, then write, same inode. */
const put = (v: unknown, path = file) => writeFile(path, text(v));
/** Replaces the file atomically, as editors do: a temporary file in the same directory, renamed over it. */
const swapIn = async (v: unknown) => {
  await writeFile(join(dir, '.mesh.json.tmp'), text(v));
  await rename(join(dir, '.mesh.json.tmp'), file);
};
const NO_POLL = { pollMs: 3_600_000 }; // only fs.watch can see a change within the test

describe('fileConfig', () => {
  it('validates its arguments, naming the one at fault', () => {
    expect(() => fileConfig('')).toThrow(new TypeError('fileConfig(path): path must be a non-empty string'));
    expect(() => fileConfig(42 as unknown as string)).toThrow(/path must be a non-empty string/);
    expect(() => fileConfig('/x', null as never)).toThrow(/options must be an object/);
    expect(() => fileConfig('/x', { debounce: 5 } as never)).toThrow(/unknown option "debounce"/);
    expect(() => fileConfig('/x', { debounceMs: -1 })).toThrow(/options\.debounceMs must be a number/);
    expect(() => fileConfig('/x', { pollMs: 0 })).toThrow(/options\.pollMs must be a number/);
    expect(() => fileConfig('/x', { pollMs: Number.NaN })).toThrow(/options\.pollMs/);
    expect(() => fileConfig('/x', { pollMs: 2 ** 31 })).toThrow(/options\.pollMs/);
    expect(() => fileConfig('/x').watch(null as never, () => {})).toThrow(/onUpdate must be a function/);
    expect(fileConfig('/etc/mesh.json').name).toBe('file:/etc/mesh.json');
  });

  it('reads the file at once, asynchronously', async () => {
    await put(A);
    const f = follow();
    expect(f.updates).toEqual([]); // not inside watch()
    await until(() => f.updates.length > 0);
    expect(f.updates).toEqual([A]);
    expect(f.errors).toEqual([]);
  });

  it('follows a rewrite in place within 2 s, through fs.watch', async () => {
    await put(A);
    const f = follow(NO_POLL);
    await until(() => f.updates.length === 1);
    const t0 = Date.now();
    await put(B);
    await until(() => f.updates.length === 2, 2_000);
    expect(f.updates).toEqual([A, B]);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('follows an atomic replace (a temporary file renamed over it), and then the new inode', async () => {
    await put(A);
    const f = follow(NO_POLL);
    await until(() => f.updates.length === 1);
    await swapIn(B);
    await until(() => f.updates.length === 2, 2_000);
    await swapIn(C);
    await until(() => f.updates.length === 3, 2_000);
    expect(f.updates).toEqual([A, B, C]);
  });

  it("follows a Kubernetes ConfigMap update (kubelet's swap of the ..data symlink)", async () => {
    // kubelet's AtomicWriter: <file> -> ..data/<file>, ..data -> ..<timestamp>; an update writes a new
    // timestamped directory, points ..data_tmp at it and renames ..data_tmp over ..data.
    await mkdir(join(dir, '..2024_01_01_a'));
    await put(A, join(dir, '..2024_01_01_a', 'mesh.json'));
    await symlink('..2024_01_01_a', join(dir, '..data'));
    await symlink(join('..data', 'mesh.json'), file);
    const f = follow(NO_POLL);
    await until(() => f.updates.length === 1);
    await mkdir(join(dir, '..2024_01_01_b'));
    await put(B, join(dir, '..2024_01_01_b', 'mesh.json'));
    await symlink('..2024_01_01_b', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2024_01_01_a'), { recursive: true });
    await until(() => f.updates.length === 2, 2_000);
    expect(f.updates).toEqual([A, B]);
    expect(f.errors).toEqual([]);
  });

  it('follows the file by the stat poll alone when fs.watch sends nothing', async () => {
    deaf.on = true;
    await put(A);
    const f = follow({ pollMs: 100 });
    await until(() => f.updates.length === 1);
    await put(B);
    await until(() => f.updates.length === 2, 2_000);
    await swapIn(C);
    await until(() => f.updates.length === 3, 2_000);
    expect(f.updates).toEqual([A, B, C]);
  });

  it('reads a file written in chunks once, complete', async () => {
    await put(A);
    const f = follow({ debounceMs: 300, ...NO_POLL });
    await until(() => f.updates.length === 1);
    const handle = await open(file, 'w');
    await handle.write(text(B).slice(0, 10));
    await new Promise((r) => setTimeout(r, 20));
    await handle.write(text(B).slice(10));
    await handle.close();
    await until(() => f.updates.length === 2, 2_000);
    expect(f.updates).toEqual([A, B]);
    expect(f.errors).toEqual([]);
  });

  it('reports a file that is not JSON, pushes nothing, and pushes the next good one', async () => {
    await put(A);
    const f = follow();
    await until(() => f.updates.length === 1);
    await put('{"defaults": {');
    await until(() => f.errors.length === 1, 2_000);
    expect(f.errors[0]).toBeInstanceOf(SyntaxError);
    expect(f.errors[0]!.message).toBe(`fileConfig(${file}): not valid JSON: the text ends before the JSON does (line 1, column 15)`);
    await put(B);
    await until(() => f.updates.length === 2, 2_000);
    expect(f.updates).toEqual([A, B]); // nothing between: the bad file was never pushed
    expect(f.errors).toHaveLength(1);
  });

  it('says where the JSON is broken (line and column), never what the file holds: a pasted key stays out of the error', async () => {
    const SECRET = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7';
    const grams = Array.from({ length: SECRET.length - 5 }, (_, i) => SECRET.slice(i, i + 6));
    /** Everything an error shows: message, stack, String(), and every own field, along the cause chain. */
    const everything = (error: unknown): string => {
      const parts: string[] = [String(error)];
      for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
        parts.push(e.message, e.stack ?? '', String(e), JSON.stringify(e, Object.getOwnPropertyNames(e)));
      }
      return parts.join('\n');
    };
    // Each is refused by JSON.parse with a message that quotes the text around the fault (V8's "Unexpected token
    // 'M', "...": a key pasted without quotes) or states a position.
    const cases: [string, string][] = [
      [`{"defaults": {"tls": {"key": ${SECRET}}}}`, 'a syntax error at line 1, column 30'],
      [`{\n  "defaults": {\n    "tls": {"key": "${SECRET}"},\n    "x": undefined\n  }\n}`, 'a syntax error at line 4, column 10'],
      [`{\n  "defaults": {"tls": {"key": "${SECRET}"}}\n  "services": {}\n}`, 'a syntax error at line 3, column 3'],
      [`{"defaults": {"tls": {"key": "${SECRET}`, `the text ends before the JSON does (line 1, column ${31 + SECRET.length})`],
    ];
    let f: ReturnType<typeof follow> | undefined;
    for (const [i, [bad, where]] of cases.entries()) {
      await swapIn(bad); // atomically: a read never sees half a file
      const watching = (f ??= follow());
      await until(() => watching.errors.length === i + 1, 2_000);
      const error = watching.errors[i]!;
      expect(grams.filter((g) => everything(error).includes(g))).toEqual([]);
      expect(error).toBeInstanceOf(SyntaxError);
      expect(error.message).toBe(`fileConfig(${file}): not valid JSON: ${where}`);
    }
    expect(f!.updates).toEqual([]);
  });

  it('reports a top level that is not an object with the four known keys', async () => {
    await put({ defaults: {}, service: {} });
    const f = follow();
    await until(() => f.errors.length === 1);
    expect(f.errors[0]).toBeInstanceOf(TypeError);
    expect(f.errors[0]!.message).toBe(
      `fileConfig(${file}): unknown top-level key "service" (expected defaults, services, routes or subsets)`,
    );
    await put('[1]');
    await until(() => f.errors.length === 2, 2_000);
    expect(f.errors[1]!.message).toContain('the top level must be a JSON object, not an array');
    await put(`\uFEFF${text(A)}`); // a byte-order mark is tolerated
    await until(() => f.updates.length === 1, 2_000);
    expect(f.updates).toEqual([A]);
  });

  it('reports a missing file, then pushes it once it is created', async () => {
    const f = follow();
    await until(() => f.errors.length === 1);
    expect(f.errors[0]!.message).toContain(`fileConfig(${file}): cannot read the file: ENOENT`);
    await swapIn(A);
    await until(() => f.updates.length === 1, 2_000);
    expect(f.updates).toEqual([A]);
    expect(f.errors).toHaveLength(1);
  });

  it('follows a file whose directory does not exist yet (by the poll, then by a new watcher)', async () => {
    const path = join(dir, 'later', 'mesh.json');
    const f = follow({ pollMs: 100 }, path);
    await until(() => f.errors.length === 1);
    await mkdir(join(dir, 'later'));
    await put(A, path);
    await until(() => f.updates.length === 1, 2_000);
    expect(f.updates).toEqual([A]);
  });

  it('does not push the same text twice in a row, nor report the same bad text twice', async () => {
    await put(A);
    const f = follow();
    await until(() => f.updates.length === 1);
    /** Makes a change, and waits until fileConfig has read the file after it. */
    const readAfter = async (change: () => Promise<void>) => {
      const before = reads.done;
      await change();
      await until(() => reads.done > before, 2_000);
      expect(reads.done).toBeGreaterThan(before);
    };
    await readAfter(() => put(A)); // the same text, a new mtime
    await readAfter(() => swapIn(A)); // the same text, a new inode
    await readAfter(() => put('{oops'));
    await until(() => f.errors.length === 1, 2_000);
    await readAfter(() => put('{oops')); // the same bad text again
    await put(B);
    await until(() => f.updates.length === 2, 2_000);
    expect(f.updates).toEqual([A, B]);
    expect(f.errors).toHaveLength(1);
  });

  it('hands an error thrown by onUpdate to onError, and goes on', async () => {
    await put(A);
    const errors: Error[] = [];
    const updates: MeshConfigInput[] = [];
    const reject = (c: MeshConfigInput) => {
      if (updates.push(c) === 1) throw new Error('rejected by the mesh');
    };
    stops.push(fileConfig(file).watch(reject, (e) => errors.push(e)));
    await until(() => errors.length === 1);
    expect(errors[0]!.message).toBe('rejected by the mesh');
    await put(B);
    await until(() => updates.length === 2, 2_000);
    expect(updates).toEqual([A, B]);
  });

  describe('leaves nothing behind', () => {
    /** Watchers and timers created by src/sources/file-config.ts and not yet closed (unref'd ones included). */
    const live = new Map<number, string>();
    const hook = createHook({
      init(id, type) {
        if (type !== 'FSEVENTWRAP' && type !== 'Timeout') return;
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 50;
        const stack = new Error().stack ?? '';
        Error.stackTraceLimit = limit;
        if (/sources[\\/]file-config\.ts/.test(stack)) live.set(id, type);
      },
      destroy: (id) => live.delete(id),
    });
    /** How many of each are alive, e.g. `FSEVENTWRAP:1 Timeout:2`. */
    const alive = () => {
      const n = (kind: string) => [...live.values()].filter((t) => t === kind).length;
      return `FSEVENTWRAP:${n('FSEVENTWRAP')} Timeout:${n('Timeout')}`;
    };
    const NONE = 'FSEVENTWRAP:0 Timeout:0';
    beforeEach(() => void hook.enable());
    afterEach(() => {
      hook.disable();
      live.clear();
    });
    // Periods far longer than the test: a poll or debounce timer that stop() forgot would still be pending.
    const LONG = { pollMs: 60_000, debounceMs: 60_000 };

    it('after unsubscribe: no fs watcher, no timer', async () => {
      await put(A);
      const f = follow(LONG);
      await until(() => f.updates.length === 1);
      // The check sees them while they run (so it can fail): the watcher, the poll, then the debounce too.
      expect(alive()).toBe('FSEVENTWRAP:1 Timeout:1');
      await put(B);
      await until(() => alive() === 'FSEVENTWRAP:1 Timeout:2');
      expect(alive()).toBe('FSEVENTWRAP:1 Timeout:2');
      f.stop();
      f.stop(); // idempotent
      await until(() => alive() === NONE, 2_000);
      expect(alive()).toBe(NONE);
    });

    it('after close(): every watch stops, and watch() is refused', async () => {
      await put(A);
      const source = fileConfig(file, LONG);
      const updates: MeshConfigInput[] = [];
      source.watch((c) => updates.push(c), () => {});
      source.watch((c) => updates.push(c), () => {});
      await until(() => updates.length === 2);
      expect(alive()).toBe('FSEVENTWRAP:2 Timeout:2');
      source.close?.();
      await until(() => alive() === NONE, 2_000);
      expect(alive()).toBe(NONE);
      expect(() => source.watch(() => {}, () => {})).toThrow(/watch\(\) after close\(\)/);
    });
  });
});
