// Per-service TLS on the undici path, with certificates made by the real openssl (test/helpers/certs.ts) and
// node:https backends on 127.0.0.1: the endpoint is an IP address, the certificate names `users.internal`.
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type Policy } from '../../src/index.js';
import { meshDispatcher } from '../../src/undici.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { startTlsBackend, type TlsBackend } from '../helpers/https-backends.js';

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function pki(): TestPki {
  const p = makePki();
  open.push(p);
  return p;
}

async function tlsBackend(...args: Parameters<typeof startTlsBackend>): Promise<TlsBackend> {
  const b = await startTlsBackend(...args);
  open.push(b);
  return b;
}

function meshFor(b: TlsBackend, users: Policy): Mesh {
  const m = createMesh({
    registry: staticRegistry({ users: [`127.0.0.1:${b.port}`] }),
    // One attempt: a certificate error must show as it is, not after retries.
    services: { users: { retry: false, breaker: false, outlier: false, ...users } },
  });
  open.push(m);
  return m;
}

/** The error of a failed request, with its cause chain's codes (undici wraps TLS errors). */
async function failure(m: Mesh): Promise<string> {
  const error = await request('https://users/v1/me', { dispatcher: meshDispatcher(m) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeDefined();
  const codes: string[] = [];
  for (let e = error as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 6; depth++) {
    codes.push(`${String(e.code ?? '')} ${String(e.message ?? '')}`);
    e = e.cause as typeof e;
  }
  return codes.join(' | ');
}

describe('per-service TLS through meshDispatcher', () => {
  it('verifies a certificate for users.internal against an endpoint at an IP, with verification on', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca } });
    const { statusCode, body } = await request('https://users/v1/me', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(200);
    expect(await body.text()).toBe('users');
    expect(b.lastServername).toBe('users.internal');
  });

  it('defaults the servername to the service name when the endpoint is an IP address', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users']) });
    const m = meshFor(b, { tls: { ca: p.ca } });
    const { statusCode, body } = await request('https://users/', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(200);
    await body.dump();
    expect(b.lastServername).toBe('users');
  });

  it('a wrong servername fails with a certificate error', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'wrong.internal', ca: p.ca } });
    expect(await failure(m)).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
    expect(b.requests).toBe(0);
  });

  it('a certificate from a CA the service does not trust fails', async () => {
    const [ours, theirs] = [pki(), pki()];
    const b = await tlsBackend('users', { ...theirs.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'users.internal', ca: ours.ca } });
    expect(await failure(m)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
  });

  it('mTLS works with a client certificate and fails without one', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']), ca: p.ca, requireClientCert: true });
    const client = p.client('billing');
    const withCert = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca, cert: client.cert, key: client.key } });
    const { statusCode, body } = await request('https://users/', { dispatcher: meshDispatcher(withCert) });
    expect(statusCode).toBe(200);
    await body.dump();
    expect(b.lastClientCN).toBe('billing');

    const without = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca } });
    expect(await failure(without)).toMatch(/CERTIFICATE_REQUIRED|certificate required|ECONNRESET|socket hang up|other side closed/i);
    expect(b.requests).toBe(1);
  });

  it("through meshInterceptor, an https attempt sends the service's SNI; the CA is the Agent's", async () => {
    const { Agent } = await import('undici');
    const { meshInterceptor } = await import('../../src/undici.js');
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'users.internal' } });
    const agent = new Agent({ connect: { ca: p.ca } });
    open.push(agent);
    const { statusCode, body } = await request('https://users/', { dispatcher: agent.compose(meshInterceptor(m)) });
    expect([statusCode, await body.text(), b.lastServername]).toEqual([200, 'users', 'users.internal']);
  });

  it("host: 'service' and TLS together: SNI users.internal, Host users", async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca }, host: 'service' });
    await (await request('https://users/', { dispatcher: meshDispatcher(m) })).body.dump();
    expect([b.lastServername, b.lastHost]).toEqual(['users.internal', 'users']);
  });

  it('refuses bad tls options, naming them and never showing a key', () => {
    const registry = staticRegistry({ users: ['127.0.0.1:1'] });
    const secret = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----';
    expect(() => createMesh({ registry, services: { users: { tls: { key: secret } } } })).toThrow(/services\.users\.tls\.cert and services\.users\.tls\.key go together/);
    try {
      createMesh({ registry, services: { users: { tls: { key: secret } } } });
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('c2VjcmV0');
    }
    expect(() => createMesh({ registry, defaults: { tls: { servername: '10.0.0.1' } } })).toThrow(/defaults\.tls\.servername must be a DNS name/);
    expect(() => createMesh({ registry, defaults: { tls: { verify: false } as never } })).toThrow(/defaults\.tls\.verify is not a known option/);
    expect(() => createMesh({ registry, defaults: { host: 'logical' as never } })).toThrow(/defaults\.host must be 'service' or 'endpoint'/);
  });
});

describe("per-service TLS and Host on mesh.fetch (a dispatcher of the service's)", () => {
  it('verifies users.internal against an IP endpoint, and sends Host: users with host: service', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']) });
    const m = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca }, host: 'service' });
    for (let i = 0; i < 2; i++) {
      const res = await m.fetch('https://users/v1/me');
      expect([res.status, await res.text()]).toEqual([200, 'users']);
    }
    expect([b.lastServername, b.lastHost]).toEqual(['users.internal', 'users']);
  });

  it('a wrong servername fails with a certificate error; mTLS needs the client certificate', async () => {
    const p = pki();
    const b = await tlsBackend('users', { ...p.server(['users.internal']), ca: p.ca, requireClientCert: true });
    const wrong = meshFor(b, { tls: { servername: 'wrong.internal', ca: p.ca } });
    const error = await wrong.fetch('https://users/').catch((e: unknown) => e);
    expect(String((error as Error).message) + String((error as { cause?: Error }).cause?.message)).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/);
    const client = p.client('billing');
    const withCert = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca, cert: client.cert, key: client.key } });
    const res = await withCert.fetch('https://users/');
    expect(res.status).toBe(200);
    await res.text();
    expect(b.lastClientCN).toBe('billing');
    const without = meshFor(b, { tls: { servername: 'users.internal', ca: p.ca } });
    await expect(without.fetch('https://users/')).rejects.toBeInstanceOf(Error);
  });

  it("host: 'service' on plain http sends the service name as Host", async () => {
    const { startBackend } = await import('../helpers/backends.js');
    const hosts: string[] = [];
    const b = await startBackend((req, res) => (hosts.push(String(req.headers.host)), res.end('ok')));
    open.push(b);
    const m = createMesh({ registry: staticRegistry({ users: [b.address] }), services: { users: { host: 'service' } } });
    open.push(m);
    const res = await m.fetch('http://users/x');
    await res.text();
    expect(hosts).toEqual(['users']);
  });
});
