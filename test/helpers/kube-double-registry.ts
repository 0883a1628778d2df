/**
 * What the tests of kubernetesRegistry against the Kubernetes API double share: doubles and registries made per
 * test and closed after it, a temp dir for token and CA files, and a watch that records what it hears.
 * Call `useKubeTestbed()` at the top of a test file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { KubernetesRegistryOptions } from '../../src/discovery/kubernetes/options.js';
import { kubernetesRegistry, type KubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { startKubeDouble, type KubeDouble, type KubeDoubleOptions } from './kube-double.js';

export const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.kube-double-token-1';
export const signal = (): AbortSignal => new AbortController().signal;
export const addresses = (list: readonly Endpoint[] | undefined): string[] => (list ?? []).map((e) => `${e.host}:${e.port}`).sort();
export const watchRequests = (d: KubeDouble) => d.requests.filter((q) => q.watch);
export const listRequests = (d: KubeDouble) => d.requests.filter((q) => !q.watch);

/** Unsubscribes still to do after the test: a registry's close() leaves held watches running (see its TSDoc). */
const pending = new Set<() => void>();

/** A watch that records what it hears; unsubscribed after the test, if the test did not. */
export function record(r: KubernetesRegistry, service = 'users') {
  const updates: (readonly Endpoint[])[] = [];
  const errors: Error[] = [];
  const unsubscribe = r.watch(service, (list) => updates.push(list), (error) => errors.push(error));
  const stop = (): void => {
    pending.delete(stop);
    unsubscribe();
  };
  pending.add(stop);
  return { updates, errors, stop, last: () => addresses(updates.at(-1)) };
}

/** Unsubscribes `stop` after the test. */
export function stopAfterTest(stop: () => void): void {
  pending.add(stop);
}

export function useKubeTestbed() {
  let dir = '';
  const doubles: KubeDouble[] = [];
  const registries: KubernetesRegistry[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-k8s-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const stop of [...pending]) stop();
    pending.clear();
    for (const r of registries.splice(0)) r.close();
    await Promise.all(doubles.splice(0).map((d) => d.close()));
  });
  return {
    dir: () => dir,
    async double(options: KubeDoubleOptions = {}): Promise<KubeDouble> {
      const d = await startKubeDouble({ token: TOKEN, ...options });
      doubles.push(d);
      return d;
    },
    /** A registry on `d`, with short backoffs (the default timing is tested on the loop, on fake timers). */
    registry(d: KubeDouble, options: KubernetesRegistryOptions = {}): KubernetesRegistry {
      return this.own(kubernetesRegistry({ apiUrl: d.url, token: TOKEN, env: {}, namespace: 'default', backoff: { initialMs: 20, maxMs: 200 }, ...options }));
    },
    /** Closes `r` after the test. */
    own(r: KubernetesRegistry): KubernetesRegistry {
      registries.push(r);
      return r;
    },
    file(name: string, content: string): string {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    },
  };
}
