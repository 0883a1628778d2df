import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerService, type Registration, type RegisterServiceOptions } from '../../src/discovery/consul-register.js';
import { ConsulError } from '../../src/discovery/consul-http.js';
import { startBackend } from '../helpers/backends.js';
import { goMs, startConsulDouble, waitUntil, type ConsulDouble } from '../helpers/consul-double.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = '0e2b7c52-5d1a-4c1f-9a4e-6f3d2b1a0c9e';
let consul: ConsulDouble;
const registrations: Registration[] = [];

beforeEach(async () => {
  consul = await startConsulDouble();
});
afterEach(async () => {
  await Promise.all(registrations.splice(0).map((r) => r.close().catch(() => {})));
  await consul.close();
});

async function register(options: Omit<RegisterServiceOptions, 'consul'> & { consul?: RegisterServiceOptions['consul'] }): Promise<Registration> {
  const r = await registerService({ ...options, consul: { url: consul.url, env: {}, ...options.consul } });
  registrations.push(r);
  return r;
}
const puts = (prefix: string) => consul.requests.filter((r) => r.method === 'PUT' && r.path.startsWith(prefix));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('registerService', () => {
  it('registers with the payload Consul documents (the TTL fixture), then reports passing at once', async () => {
    const r = await register({
      service: { name: 'users', id: 'users-1', address: '127.0.1.21', port: 8080, tags: ['v2', 'http'], meta: { version: '2.1.0' }, weights: { passing: 10, warning: 1 } },
      check: { ttlMs: 15_000, notes: 'app heartbeat' },
      deregisterCriticalAfterMs: 60_000,
    });
    expect([r.id, r.checkId]).toEqual(['users-1', 'service:users-1']);
    const sent = JSON.parse(puts('/v1/agent/service/register')[0]!.body);
    const expected = JSON.parse(readFileSync(new URL('../fixtures/consul/agent-service-register-ttl.synthesized.json', import.meta.url), 'utf8'));
    // Durations may be spelt differently ("1m" vs "60s"); Consul parses both with time.ParseDuration.
    for (const key of ['TTL', 'DeregisterCriticalServiceAfter']) {
      expect(goMs(sent.Check[key])).toBe(goMs(expected.Check[key]));
      delete sent.Check[key];
      delete expected.Check[key];
    }
    expect(sent).toEqual(expected);
    expect(puts('/v1/agent/check/pass/').map((p) => p.path)).toEqual(['/v1/agent/check/pass/service%3Ausers-1']);
    expect(consul.checkStatus('service:users-1')).toBe('passing');
  });

  it('heartbeats a TTL check at a third of the TTL, so it stays passing; close() deregisters and stops', async () => {
    const r = await register({ service: { name: 'users', address: '127.0.0.1', port: 8080 }, check: { ttlMs: 300 } });
    expect(r.id).toBe('users-127.0.0.1-8080');
    const statuses: (string | undefined)[] = [];
    for (let i = 0; i < 16; i++) {
      await sleep(50);
      statuses.push(consul.checkStatus(r.checkId!));
    }
    expect(statuses.every((s) => s === 'passing')).toBe(true); // the TTL (300 ms) never ran out
    const beats = puts('/v1/agent/check/pass/');
    expect(beats.length).toBeGreaterThanOrEqual(7); // 1 at once + one per 100 ms over 800 ms
    expect(beats.length).toBeLessThanOrEqual(10);

    await r.close();
    await r.close(); // twice is harmless
    expect(puts('/v1/agent/service/deregister/').map((p) => p.path)).toEqual(['/v1/agent/service/deregister/users-127.0.0.1-8080']);
    expect(consul.agentServices().size).toBe(0);
    const count = consul.requests.length;
    await sleep(250);
    expect(consul.requests.length).toBe(count);
  });

  it('(control) without heartbeats the double lets the TTL expire: critical, "TTL expired"', async () => {
    await fetch(`${consul.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ ID: 'x', Name: 'x', Port: 1, Check: { TTL: '100ms', Status: 'passing' } }) });
    expect(consul.checkStatus('service:x')).toBe('passing');
    await waitUntil(() => expect(consul.checkStatus('service:x')).toBe('critical'), 1_000);
  });

  it('recovers after Consul errors: failures are reported and retried, and the check is passing again', async () => {
    const errors: Error[] = [];
    const r = await register({ service: { name: 'users', address: '127.0.0.1', port: 8080 }, check: { ttlMs: 600 }, onError: (e) => errors.push(e) });
    consul.respondWith(500, 'No known Consul servers', { only: /\/check\/pass\// });
    await waitUntil(() => expect(errors.length).toBeGreaterThanOrEqual(2), 2_000);
    await waitUntil(() => expect(consul.checkStatus(r.checkId!)).toBe('critical'), 2_000); // its TTL ran out meanwhile
    expect(errors[0]).toBeInstanceOf(ConsulError);
    expect(errors[0]!.message).toContain('500');
    expect(errors[0]!.message).toContain('No known Consul servers');
    consul.respondNormally();
    await waitUntil(() => expect(consul.checkStatus(r.checkId!)).toBe('passing'), 1_500);
  });

  it('registers again when the agent forgot the check (404 Unknown check ID)', async () => {
    const errors: Error[] = [];
    const r = await register({ service: { name: 'users', address: '127.0.0.1', port: 8080, tags: ['v2'] }, check: { ttlMs: 300 }, onError: (e) => errors.push(e) });
    consul.forgetAgentState();
    expect(consul.agentServices().size).toBe(0);
    await waitUntil(() => expect(consul.checkStatus(r.checkId!)).toBe('passing'), 1_000);
    expect(consul.agentServices().get(r.id)?.Tags).toEqual(['v2']);
    expect(puts('/v1/agent/service/register')).toHaveLength(2);
    expect(errors).toEqual([]);
  });

  it('passes an HTTP check through (Consul polls it; no heartbeat)', async () => {
    const health = await startBackend((_req, res) => res.end('ok'));
    try {
      const r = await register({
        service: { name: 'web', address: '127.0.0.1', port: health.port },
        check: { http: `http://${health.address}/health`, intervalMs: 100, timeoutMs: 50, method: 'GET' },
      });
      expect(JSON.parse(puts('/v1/agent/service/register')[0]!.body).Check).toEqual({ HTTP: `http://${health.address}/health`, Interval: '100ms', Timeout: '50ms', Method: 'GET' });
      await waitUntil(() => expect(consul.checkStatus(r.checkId!)).toBe('passing'));
      expect(health.seen.length).toBeGreaterThan(0);
      await sleep(150);
      expect(puts('/v1/agent/check/')).toHaveLength(0);
    } finally {
      await health.close();
    }
  });

  it("Consul's 400s and 403s reject with a ConsulError quoting Consul's text", async () => {
    const bad = await registerService({ consul: { url: consul.url, env: {} }, service: { name: 'users', address: '0.0.0.0', port: 8080 } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConsulError);
    expect((bad as ConsulError).status).toBe(400);
    expect((bad as Error).message).toBe('Consul answered 400 to PUT /v1/agent/service/register: Invalid service address');

    await consul.close();
    consul = await startConsulDouble({ token: TOKEN });
    const denied = await registerService({ consul: { url: consul.url, env: {} }, service: { name: 'users', address: '127.0.0.1', port: 8080 } }).catch((e: unknown) => e);
    expect((denied as Error).message).toMatch(/^Consul answered 403 .*Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write'/);
    const r = await register({ consul: { token: TOKEN }, service: { name: 'users', address: '127.0.0.1', port: 8080 }, check: { ttlMs: 5_000 } });
    expect(consul.requests.every((q) => q.token === undefined || q.token === TOKEN)).toBe(true);
    await r.close();
    expect(consul.agentServices().size).toBe(0);
  });

  it('validates its options, naming them', async () => {
    const service = { name: 'users', address: '127.0.0.1', port: 8080 };
    const cases: [unknown, RegExp][] = [
      [{ service: { ...service, name: 'users/x' } }, /registerService\.service\.name is not a valid service name/],
      [{ service: { ...service, port: 0 } }, /service\.port must be an integer/],
      [{ service: { ...service, weights: { passing: 0 } } }, /weights\.passing must be an integer >= 1/],
      [{ service, check: { ttlMs: -1 } }, /check\.ttlMs must be a finite number > 0/],
      [{ service, check: { ttlMs: 1_000 }, heartbeatMs: 1_000 }, /heartbeatMs must be less than check\.ttlMs/],
      [{ service, check: { http: 'ftp://x', intervalMs: 1 } }, /check\.http must be an http\(s\) URL/],
      [{ service, deregisterCriticalAfterMs: 60_000 }, /deregisterCriticalAfterMs needs a check/],
      [{ service, deregisterOn: ['SIGNOPE'] }, /deregisterOn must be an array of signal names/],
      [{ service, consul: { adress: 'x' } }, /registerService\.consul\.adress is not a known option/],
    ];
    for (const [options, message] of cases) {
      await expect(registerService(options as RegisterServiceOptions)).rejects.toThrow(message);
    }
    expect(consul.requests).toHaveLength(0);
  });

  it('deregisterOn: the signal deregisters and removes the listeners (another listener keeps the process alive)', async () => {
    const keep = (): void => {};
    process.on('SIGUSR2', keep); // with another listener, the signal is not raised again
    try {
      const baseline = process.listenerCount('SIGUSR2');
      await register({ service: { name: 'users', address: '127.0.0.1', port: 8080 }, deregisterOn: ['SIGUSR2', 'SIGHUP'] });
      expect(process.listenerCount('SIGUSR2')).toBe(baseline + 1);
      process.emit('SIGUSR2', 'SIGUSR2');
      await waitUntil(() => expect(consul.agentServices().size).toBe(0));
      expect(process.listenerCount('SIGUSR2')).toBe(baseline);
      expect(process.listenerCount('SIGHUP')).toBe(0);

      const r = await register({ service: { name: 'users', address: '127.0.0.1', port: 8080 }, deregisterOn: ['SIGUSR2'] });
      await r.close(); // close() removes them too
      expect(process.listenerCount('SIGUSR2')).toBe(baseline);
    } finally {
      process.off('SIGUSR2', keep);
    }
  });

  describe('deregisterOn in a real process', () => {
    const run = (scenario: string) =>
      new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((done, fail) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/fixtures/consul/register-child.ts'), consul.url, scenario], {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          if (chunk.includes('"ready"')) child.kill('SIGTERM');
        });
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        child.on('error', fail);
        child.on('close', (code, signal) => {
          clearTimeout(killer);
          done({ code, signal, out });
        });
      });

    it('SIGTERM deregisters, then the process dies of SIGTERM as it would have without us', async () => {
      const { code, signal, out } = await run('default');
      expect(puts('/v1/agent/service/deregister/').map((p) => p.path), out).toEqual(['/v1/agent/service/deregister/child-127.0.0.1-9999']);
      expect([code, signal], out).toEqual([null, 'SIGTERM']);
    });

    it("with the app's own SIGTERM handler, the signal is not raised again: the app exits its own way", async () => {
      const { code, signal, out } = await run('own-handler');
      expect(puts('/v1/agent/service/deregister/'), out).toHaveLength(1);
      expect([code, signal], out).toEqual([0, null]);
      expect(out).toContain('ownHandler');
    });
  });
});
