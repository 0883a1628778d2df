/**
 * Self-test of the TLS test helpers (test/helpers/certs.ts, test/helpers/https-backends.ts) with plain node:https
 * requests, no mesh: the certificates verify for their names only, and the mTLS backend wants a client certificate.
 */
import https from 'node:https';
import { describe, expect, it } from 'vitest';
import { makePki } from './certs.js';
import { startTlsBackend } from './https-backends.js';

interface Reply {
  status: number;
  body: string;
}

/** One GET over a fresh connection (`agent: false`), so nothing is left open after it settles. */
function get(port: number, opts: https.RequestOptions): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('test PKI and TLS backends', () => {
  it('a server certificate verifies for its DNS name, over 127.0.0.1 with SNI', async () => {
    const pki = makePki();
    const backend = await startTlsBackend('users', pki.server(['users.internal', 'users.alt']));
    try {
      expect(pki.ca).toContain('BEGIN CERTIFICATE');
      const reply = await get(backend.port, {
        servername: 'users.internal',
        ca: pki.ca,
        headers: { host: 'users.internal' },
      });
      expect(reply).toEqual({ status: 200, body: 'users' });
      expect(backend.requests).toBe(1);
      expect(backend.lastServername).toBe('users.internal');
      expect(backend.lastHost).toBe('users.internal');
      expect(backend.lastClientCN).toBeUndefined();
      // The second SAN entry is valid too.
      await expect(get(backend.port, { servername: 'users.alt', ca: pki.ca })).resolves.toMatchObject({ status: 200 });
      expect(backend.lastServername).toBe('users.alt');
    } finally {
      await backend.close();
      pki.close();
    }
  });

  it('the certificate does not verify for another name', async () => {
    const pki = makePki();
    const backend = await startTlsBackend('users', pki.server(['users.internal']));
    try {
      await expect(get(backend.port, { servername: 'wrong.internal', ca: pki.ca })).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
      expect(backend.requests).toBe(0);
    } finally {
      await backend.close();
      pki.close();
    }
  });

  it('a certificate from another CA does not verify', async () => {
    const pki = makePki();
    const other = makePki();
    const backend = await startTlsBackend('users', other.server(['users.internal']));
    try {
      expect(other.ca).not.toBe(pki.ca);
      await expect(get(backend.port, { servername: 'users.internal', ca: pki.ca })).rejects.toMatchObject({
        code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/),
      });
      expect(backend.requests).toBe(0);
    } finally {
      await backend.close();
      pki.close();
      other.close();
    }
  });

  it('an mTLS backend answers with a client certificate and refuses without one', async () => {
    const pki = makePki();
    const backend = await startTlsBackend('orders', {
      ...pki.server(['orders.internal']),
      ca: pki.ca,
      requireClientCert: true,
    });
    try {
      const client = pki.client('billing');
      const reply = await get(backend.port, {
        servername: 'orders.internal',
        ca: pki.ca,
        cert: client.cert,
        key: client.key,
      });
      expect(reply).toEqual({ status: 200, body: 'orders' });
      expect(backend.lastClientCN).toBe('billing');
      expect(backend.lastServername).toBe('orders.internal');

      await expect(get(backend.port, { servername: 'orders.internal', ca: pki.ca })).rejects.toThrow();
      // A client certificate from another CA is refused as well.
      const other = makePki();
      try {
        const stranger = other.client('billing');
        await expect(
          get(backend.port, { servername: 'orders.internal', ca: pki.ca, cert: stranger.cert, key: stranger.key }),
        ).rejects.toThrow();
      } finally {
        other.close();
      }
      expect(backend.requests).toBe(1);
    } finally {
      await backend.close();
      pki.close();
    }
  });
});
