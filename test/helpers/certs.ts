/**
 * Test certificates made with the real `openssl` binary, for the TLS tests: a fresh CA per `makePki()` (in its
 * own temp dir), server certificates for DNS names (SAN DNS entries only) and client certificates (clientAuth),
 * all signed by that CA. EC P-256 keys, SHA-256, valid for 2 days. Nothing is cached: every call runs openssl.
 *
 * A certificate "from another CA" is simply one from a second `makePki()`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  /** PEM of the CA certificate that signed everything below. */
  readonly ca: string;
  /** A server certificate + key for the DNS name(s) given (SAN DNS entries only, no IP SAN), signed by the CA. */
  server(names: readonly string[]): { cert: string; key: string };
  /** A client certificate + key (CN given, extendedKeyUsage clientAuth), signed by the CA. */
  client(commonName: string): { cert: string; key: string };
  /** Removes the temp dir. */
  close(): void;
}

const OPENSSL = '/usr/bin/openssl';
const DAYS = '2';

/**
 * A minimal `openssl req` config, so that neither the system's openssl.cnf nor OPENSSL_CONF matters. The subject
 * comes from `-subj`; extensions come from the `-extfile` given to `openssl x509`.
 */
const REQ_CONFIG = ['[req]', 'distinguished_name = dn', 'prompt = no', '', '[dn]', 'CN = placeholder', ''].join('\n');

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync(OPENSSL, args, {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OPENSSL_CONF: join(cwd, 'req.cnf') },
    });
  } catch (err) {
    const e = err as { stderr?: Buffer; message?: string };
    const stderr = e.stderr?.toString().trim();
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || e.message}`);
  }
}

/** `/CN=...` with the characters `-subj` treats specially escaped. */
function subject(commonName: string): string {
  return `/CN=${commonName.replace(/[\\/+=]/g, (c) => `\\${c}`)}`;
}

/** A random positive serial (top bit clear), as `-set_serial` takes it. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

function validateName(kind: string, value: string, forbidden: RegExp): void {
  if (value.length === 0 || forbidden.test(value)) throw new Error(`certs: invalid ${kind} ${JSON.stringify(value)}`);
}

/** Makes a fresh CA in a temp dir (mkdtemp under os.tmpdir()). */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-pki-'));
  let counter = 0;
  let closed = false;
  const run = (args: string[]): void => openssl(args, dir);
  const read = (file: string): string => readFileSync(join(dir, file), 'utf8');

  try {
    writeFileSync(join(dir, 'req.cnf'), REQ_CONFIG);
    writeFileSync(
      join(dir, 'ca.ext'),
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', ''].join(
        '\n',
      ),
    );
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key']);
    run(['req', '-new', '-config', 'req.cnf', '-key', 'ca.key', '-subj', subject('proxyless test CA'), '-out', 'ca.csr']);
    run([
      'x509', '-req', '-in', 'ca.csr', '-signkey', 'ca.key', '-sha256', '-days', DAYS,
      '-set_serial', serial(), '-extfile', 'ca.ext', '-out', 'ca.crt',
    ]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const ca = read('ca.crt');

  /** Key, CSR and a CA-signed certificate with the extensions given; returns the PEMs. */
  const issue = (commonName: string, extensions: string[]): { cert: string; key: string } => {
    if (closed) throw new Error('certs: the PKI is closed');
    const base = `leaf${++counter}`;
    writeFileSync(join(dir, `${base}.ext`), [...extensions, ''].join('\n'));
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${base}.key`]);
    run(['req', '-new', '-config', 'req.cnf', '-key', `${base}.key`, '-subj', subject(commonName), '-out', `${base}.csr`]);
    run([
      'x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-sha256', '-days', DAYS,
      '-set_serial', serial(), '-extfile', `${base}.ext`, '-out', `${base}.crt`,
    ]);
    return { cert: read(`${base}.crt`), key: read(`${base}.key`) };
  };

  return {
    ca,
    server(names) {
      if (names.length === 0) throw new Error('certs: server() needs at least one DNS name');
      for (const n of names) validateName('DNS name', n, /[\s,]/);
      return issue(names[0]!, [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid,issuer',
      ]);
    },
    client(commonName) {
      validateName('common name', commonName, /[\r\n]/);
      return issue(commonName, [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=clientAuth',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid,issuer',
      ]);
    },
    close() {
      closed = true;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
