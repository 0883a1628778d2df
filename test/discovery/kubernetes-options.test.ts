// kubernetesRegistry's options, checked once with errors that name them, the in-cluster defaults, and the
// mapping of service names to Services (hostile names refused).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CachedFile, checkToken, redact, tokenSource } from '../../src/discovery/kubernetes/credentials.js';
import { kubernetesSettings } from '../../src/discovery/kubernetes/options.js';
import { serviceRef } from '../../src/discovery/kubernetes/names.js';
import { kubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import { InvalidServiceNameError } from '../../src/errors.js';
import { manualClock } from './fakes.js';

const dir = mkdtempSync(join(tmpdir(), 'proxyless-k8s-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const missing = join(dir, 'missing');
/** Options that touch no file of this machine. */
const base = { apiUrl: 'http://127.0.0.1:1', env: {}, namespaceFile: writeFile('ns-default', 'default\n') };
function writeFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('kubernetesRegistry options', () => {
  it('builds the in-cluster URL from KUBERNETES_SERVICE_HOST/PORT, bracketing an IPv6 host', () => {
    expect(kubernetesSettings({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, namespace: 'a' })).toMatchObject({
      origin: 'https://10.96.0.1',
      protocol: 'https:',
      hostname: '10.96.0.1',
      port: 443,
    });
    expect(kubernetesSettings({ env: { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '6443' }, namespace: 'a' })).toMatchObject({
      origin: 'https://[fd00:10:96::1]:6443',
      hostname: 'fd00:10:96::1',
      port: 6443,
    });
    expect(() => kubernetesSettings({ env: {}, namespace: 'a' })).toThrow(/kubernetesRegistry\.apiUrl is required outside a pod \(KUBERNETES_SERVICE_HOST/);
  });

  it('defaults the credentials to the service-account files, which may be missing outside a pod', () => {
    const s = kubernetesSettings({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, namespace: 'a' });
    expect(s.tokenFile).toEqual({ path: '/var/run/secrets/kubernetes.io/serviceaccount/token', required: false });
    expect(s.caFile).toEqual({ path: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', required: false });
    // Given explicitly, they must be there when used.
    const own = kubernetesSettings({ ...base, tokenFile: '/t', caFile: '/c', apiUrl: 'https://x' });
    expect([own.tokenFile, own.caFile]).toEqual([{ path: '/t', required: true }, { path: '/c', required: true }]);
    // A token given as a string is used as it is: no file.
    expect(kubernetesSettings({ ...base, token: 'abc' }).tokenFile).toBeUndefined();
    // Plain http has no CA to read.
    expect(kubernetesSettings(base).caFile).toBeUndefined();
  });

  it("reads the namespace from the namespace file, 'default' without one; the option wins", () => {
    expect(kubernetesSettings({ ...base, namespaceFile: writeFile('ns', 'payments\n') }).namespace).toBe('payments');
    expect(kubernetesSettings({ ...base, namespace: 'billing', namespaceFile: missing }).namespace).toBe('billing');
    expect(() => kubernetesSettings({ ...base, namespaceFile: missing })).toThrow(/kubernetesRegistry\.namespaceFile .* cannot be read \(ENOENT\)/);
    expect(() => kubernetesSettings({ ...base, namespaceFile: writeFile('ns-bad', '../etc\n') })).toThrow(/is not a namespace name/);
    const { namespaceFile: _, ...noFile } = base;
    expect(kubernetesSettings(noFile).namespace).toBe('default'); // this machine has no service-account mount
  });

  it('refuses unknown keys and bad values, naming the option', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ bogus: 1 }, /kubernetesRegistry\.bogus is not a known option/],
      [{ port: 0 }, /kubernetesRegistry\.port must be a port name/],
      [{ port: 70000 }, /kubernetesRegistry\.port must be/],
      [{ port: 'HTTP' }, /kubernetesRegistry\.port must be/],
      [{ ports: { users: -1 } }, /kubernetesRegistry\.ports\["users"\] must be/],
      [{ ports: { '../x': 'http' } }, /kubernetesRegistry\.ports has a key that is not a service name/],
      [{ namespace: 'Payments' }, /kubernetesRegistry\.namespace must be a Kubernetes namespace name/],
      [{ apiUrl: 'ftp://x' }, /kubernetesRegistry\.apiUrl must be an http: or https: URL/],
      [{ apiUrl: 'https://u:p@x' }, /must not carry credentials/],
      [{ apiUrl: 'https://x/?a=1' }, /must not have a query/],
      [{ apiUrl: 'not a url' }, /must make a valid http\(s\) URL/],
      [{ idleTimeoutMs: 0 }, /kubernetesRegistry\.idleTimeoutMs must be a number from 1/],
      [{ timeoutMs: Infinity }, /kubernetesRegistry\.timeoutMs must be/],
      [{ backoff: { initialMs: 0 } }, /kubernetesRegistry\.backoff\.initialMs must be/],
      [{ backoff: { initialMs: 500, maxMs: 100 } }, /kubernetesRegistry\.backoff\.maxMs must be a number from 500/],
      [{ backoff: { max: 1 } }, /kubernetesRegistry\.backoff\.max is not a known option/],
      [{ watchTimeoutSeconds: 0 }, /kubernetesRegistry\.watchTimeoutSeconds must be/],
      [{ tokenFile: '' }, /kubernetesRegistry\.tokenFile must be a non-empty string/],
      [{ tlsServerName: 'a\nb' }, /kubernetesRegistry\.tlsServerName must be/],
      [{ random: 4 }, /kubernetesRegistry\.random must be a function/],
      [{ clock: {} }, /kubernetesRegistry\.clock must be an object with now\(\)/],
      [{ env: 'x' }, /kubernetesRegistry\.env must be an object/],
      [{ addressType: 'ipv4' }, /kubernetesRegistry\.addressType must be 'IPv4' or 'IPv6'/],
      [{ addressType: 'FQDN' }, /kubernetesRegistry\.addressType must be 'IPv4' or 'IPv6'/],
    ];
    for (const [over, message] of cases) expect(() => kubernetesRegistry({ ...base, ...over } as never), JSON.stringify(over)).toThrow(message);
    expect(() => kubernetesRegistry(null as never)).toThrow(/kubernetesRegistry\(options\) must be an object/);
  });

  it('never echoes a token, even a malformed one', () => {
    const secret = 'eyJhbGciOi.secret part\nwith a newline';
    let message = '';
    try {
      kubernetesRegistry({ ...base, token: secret });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/kubernetesRegistry\.token must be a non-empty string of visible ASCII/);
    expect(message).not.toContain('secret');
    expect(() => kubernetesRegistry({ ...base, token: 'a', tokenFile: '/x' })).toThrow(/give token or tokenFile, not both/);
  });
});

describe('service names to Services', () => {
  it("reads 'name', 'name.namespace' and the cluster DNS forms", () => {
    expect(serviceRef('users', 'default')).toEqual({ name: 'users', namespace: 'default' });
    expect(serviceRef('users.payments', 'default')).toEqual({ name: 'users', namespace: 'payments' });
    expect(serviceRef('users.payments.svc', 'default')).toEqual({ name: 'users', namespace: 'payments' });
    expect(serviceRef('users.payments.svc.cluster.local', 'default')).toEqual({ name: 'users', namespace: 'payments' });
  });

  it('refuses hostile or non-Kubernetes names with an InvalidServiceNameError', () => {
    for (const name of ['', 'Users', 'users_v2', 'users.pay/ments', 'users..x', '-users', 'users.-x', 'a.b.c', `${'a'.repeat(64)}`, 'users%2F..', 'users\nHost: evil', '../x']) {
      expect(() => serviceRef(name, 'default'), JSON.stringify(name)).toThrow(InvalidServiceNameError);
    }
  });

  it('resolve() and watch() refuse them before any request', async () => {
    const registry = kubernetesRegistry(base);
    await expect(registry.resolve('users/../../secrets', { signal: new AbortController().signal })).rejects.toBeInstanceOf(InvalidServiceNameError);
    expect(() => registry.watch('Users', () => {}, () => {})).toThrow(InvalidServiceNameError);
    registry.close();
  });
});

describe('the token file', () => {
  it('is read again once older than tokenRefreshMs, and at once after invalidate() (a 401)', async () => {
    const clock = manualClock(0);
    const path = writeFile('token-rotating', 'one\n');
    const file = new CachedFile(path, true, 60_000, clock, checkToken(path));
    const tokens = tokenSource(undefined, file);
    expect(await tokens.get()).toBe('one');
    writeFileSync(path, 'two');
    clock.advance(59_999);
    expect(await tokens.get()).toBe('one'); // cached for a minute, as client-go does
    clock.advance(1);
    expect(await tokens.get()).toBe('two');
    writeFileSync(path, 'three');
    expect(tokens.invalidate()).toBe(true);
    expect(await tokens.get()).toBe('three');
    // The current token and the one before are redacted from any text.
    expect(redact('a three b two c one', tokens.secrets())).toBe('a [redacted] b [redacted] c one');
  });

  it('a missing default file means no token; a missing explicit one is an error naming the file only', async () => {
    const clock = manualClock(0);
    expect(await new CachedFile(missing, false, 60_000, clock, checkToken(missing)).get()).toBeUndefined();
    await expect(new CachedFile(missing, true, 60_000, clock, checkToken(missing)).get()).rejects.toThrow(/^cannot read .*missing \(ENOENT\)$/);
    const empty = writeFile('token-empty', '\n');
    await expect(new CachedFile(empty, true, 60_000, clock, checkToken(empty)).get()).rejects.toThrow(/is empty$/);
  });

  it('a fixed token is never read again, nor retried after a 401', async () => {
    const tokens = tokenSource('fixed', undefined);
    expect(await tokens.get()).toBe('fixed');
    expect(tokens.invalidate()).toBe(false);
    expect(tokens.secrets()).toEqual(['fixed']);
  });
});
