import { describe, it } from 'vitest';
import { etcdBinary, etcdRequired } from './etcd-server.js';

/**
 * `describe` for a suite that needs a real etcd: skipped when the binary is missing, unless `REQUIRE_ETCD=1` (CI),
 * where a missing etcd is a failing case instead, so that CI cannot pass without the etcd suites. Kept apart from
 * etcd-server.ts, which the benches import outside vitest.
 */
export function describeWithEtcd(name: string, body: () => void): void {
  if (etcdBinary === undefined && etcdRequired()) {
    describe(name, () => {
      it('has etcd installed (REQUIRE_ETCD=1)', () => {
        throw new Error('REQUIRE_ETCD=1 but etcd is not on PATH (apt-get install etcd-server)');
      });
    });
    return;
  }
  describe.skipIf(etcdBinary === undefined)(name, body);
}
