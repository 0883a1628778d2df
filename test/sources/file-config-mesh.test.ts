/**
 * fileConfig driving a mesh, end to end: a rewritten file is in force within 2 s, a garbage file is a
 * config-error and the last good routes stay, and close() stops the watch. Real files, real time, bounded polls.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createMesh, fileConfig, staticRegistry, type Mesh } from '../../src/index.js';

let dir: string;
let mesh: Mesh | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'proxyless-file-mesh-'));
});
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
  await rm(dir, { recursive: true, force: true });
});

const registry = () =>
  staticRegistry({
    users: [
      { host: '127.0.0.1', port: 1001, tags: ['v1'] },
      { host: '127.0.0.1', port: 1002, tags: ['v2'] },
    ],
  });
const configTo = (subset: string) =>
  JSON.stringify({
    subsets: { users: { v1: { tags: ['v1'] }, v2: { tags: ['v2'] } } },
    routes: { users: [{ name: 'all', backends: [{ subset }] }] },
  });

async function until(ok: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (!(await ok())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

const portOf = (m: Mesh) => m.call('users', (ep) => ep.port);

it('follows a rewritten file within 2 s; a garbage file is a config-error and the last good routes stay', async () => {
  const file = join(dir, 'mesh.json');
  await writeFile(file, configTo('v1'));
  const errors: Error[] = [];
  const updates: string[] = [];
  mesh = createMesh({ registry: registry(), config: fileConfig(file) });
  mesh.on('config-error', ({ error }) => errors.push(error));
  mesh.on('config-update', ({ source }) => updates.push(source));
  await until(() => mesh!.config().sources.users === `file:${file}`, 2_000);
  for (let i = 0; i < 20; i++) expect(await portOf(mesh)).toBe(1001);

  await writeFile(file, configTo('v2'));
  const followedMs = await until(async () => (await portOf(mesh!)) === 1002, 2_000);
  expect(followedMs).toBeLessThan(2_000);
  const version = mesh.config().version;

  await writeFile(file, '{ "routes": { "users": [ oops');
  await until(() => errors.length > 0, 2_000);
  expect(mesh.config().version).toBe(version);
  for (let i = 0; i < 20; i++) expect(await portOf(mesh)).toBe(1002);

  // Valid JSON that does not validate is a config-error too, naming the option.
  await writeFile(file, JSON.stringify({ routes: { users: [{ name: 'x', backends: [{ subset: 'v9' }] }] } }));
  await until(() => errors.some((e) => e instanceof TypeError && /subset 'v9'/.test(e.message)), 2_000);
  expect(mesh.config().version).toBe(version);
  expect(await portOf(mesh)).toBe(1002);
  expect(updates.every((s) => s === `file:${file}`)).toBe(true);
});

// That the watcher and its timers are gone after an unsubscribe is shown in file-config.test.ts (async_hooks counts);
// here, that the mesh's close() unsubscribes: a rewrite after it reaches nobody.
it('close() stops the watch: a later rewrite reaches nobody', async () => {
  const file = join(dir, 'mesh.json');
  await writeFile(file, configTo('v1'));
  const m = createMesh({ registry: registry(), config: fileConfig(file, { pollMs: 50 }) });
  let updates = 0;
  m.on('config-update', () => updates++);
  await until(() => updates > 0, 2_000);
  await m.close();
  const seen = updates;
  await writeFile(file, configTo('v2'));
  await new Promise((r) => setTimeout(r, 300)); // 6 poll periods: a live watch would have pushed by now
  expect(updates).toBe(seen);
});
