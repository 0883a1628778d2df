// etcdRegistry runs the shared registry contract against a real etcd (one per file, a fresh key prefix per case).
// The failure cases go through a TCP proxy that resets every connection while "failing": etcd itself stays up,
// so a case's outage costs no process restart (about 2 s) and its timings stay those of loopback.
// Skipped when etcd is missing, unless REQUIRE_ETCD=1.
import * as vitest from 'vitest';
import { etcdRegistry, type EtcdRegistry } from '../../src/discovery/etcd/registry.js';
import { registryContract } from '../../src/testing.js';
import { startEtcd, startEtcdProxy, type EtcdProxy, type EtcdServer } from '../helpers/etcd-server.js';
import { describeWithEtcd } from '../helpers/etcd-suite.js';

const { afterAll, beforeAll } = vitest;

describeWithEtcd('etcd', () => {
  let etcd: EtcdServer;
  let proxy: EtcdProxy;
  let prefix = '/contract/';
  let n = 0;
  let failing = false;
  const registries: EtcdRegistry[] = [];
  const services = new Set(['users', 'orders']);
  /**
   * Until every running loop watches at etcd's current revision (events and progress notifications both move
   * it), so everything etcd will send for now has been applied. Bounded; at once while the proxy fails.
   */
  const settle = async (): Promise<void> => {
    if (failing) return;
    const revision = await etcd.revision();
    const deadline = Date.now() + 2_000;
    const behind = (): boolean =>
      registries.some((r) =>
        [...services].some((s) => {
          const state = r.watchState(s);
          return state !== undefined && state.kind !== 'stopped' && !(state.kind === 'watching' && state.revision >= revision);
        }),
      );
    while (behind() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  };
  beforeAll(async () => {
    // Progress notifications every 100 ms move each loop's revision to etcd's, which is what settle() waits for.
    etcd = await startEtcd({ args: ['--experimental-watch-progress-notify-interval=100ms'] });
    proxy = await startEtcdProxy(etcd.url);
  });
  afterAll(async () => {
    await proxy?.close();
    await etcd?.close();
  });

  registryContract(
    'etcdRegistry',
    // Short backoff and timeout: a recovered source is retried within 100 ms, a failing one is known at once.
    () => {
      const r = etcdRegistry({ endpoints: [proxy.url], prefix, backoff: { initialMs: 20, maxMs: 100 }, timeoutMs: 1_000 });
      registries.push(r);
      return r;
    },
    {
      setup: () => {
        prefix = `/contract-${process.pid}-${++n}/`;
        registries.splice(0);
        failing = false;
        proxy.recover();
      },
      // Straight to etcd, so that the source can be changed while the registry's path to it fails.
      set: (service, endpoints) => {
        services.add(service);
        return etcd.setService(prefix, service, endpoints);
      },
      fail: () => {
        failing = true;
        proxy.fail();
      },
      recover: () => {
        failing = false;
        proxy.recover();
      },
      teardown: async () => {
        proxy.recover();
        await etcd.del(prefix, { prefix: true });
      },
      settle,
      test: vitest,
    },
  );
});
