// meshInterceptor composed onto an undici Agent, set as the process's global dispatcher: a service's requests
// run as mesh calls, any other origin goes straight through, untouched. Real node:http backends on 127.0.0.1.
import { Agent, getGlobalDispatcher, request, setGlobalDispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { staticRegistry } from '../../src/index.js';
import { meshInterceptor } from '../../src/undici.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();

const original = getGlobalDispatcher();
const agents: Agent[] = [];
afterEach(async () => {
  setGlobalDispatcher(original);
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

function globalAgentWith(interceptor: ReturnType<typeof meshInterceptor>): void {
  const agent = new Agent();
  agents.push(agent);
  setGlobalDispatcher(agent.compose(interceptor));
}

describe('meshInterceptor on the global dispatcher', () => {
  it("governs undici.request('http://users/...') and leaves http://127.0.0.1:port/ alone", async () => {
    const hosts: string[] = [];
    const [a, b] = [
      await backend((req, res) => (hosts.push(String(req.headers.host)), res.end('a'))),
      await backend((req, res) => (hosts.push(String(req.headers.host)), res.end('b'))),
    ];
    const m = mesh({ registry: staticRegistry({ users: [a.address, b.address] }), defaults: { balancer: 'round-robin' } });
    const seenByMesh: string[] = [];
    m.on('request', (e) => seenByMesh.push(e.endpoint.id));
    globalAgentWith(meshInterceptor(m));

    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { statusCode, body } = await request('http://users/v1/me'); // no dispatcher: the global one
      expect(statusCode).toBe(200);
      answers.add(await body.text());
    }
    expect(answers).toEqual(new Set(['a', 'b']));
    expect(seenByMesh).toHaveLength(6);
    expect(m.snapshot().services.users?.calls).toBe(6);

    hosts.length = 0;
    const direct = await request(`http://127.0.0.1:${a.port}/direct`);
    expect(await direct.body.text()).toBe('a');
    expect(seenByMesh).toHaveLength(6); // the mesh never saw it
    expect(hosts).toEqual([`127.0.0.1:${a.port}`]);
    expect(Object.keys(m.snapshot().services)).toEqual(['users']);
  });

  it('a name discovery does not list (localhost) goes straight through, and leaves no service behind', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const seenByMesh: string[] = [];
    m.on('request', (e) => seenByMesh.push(e.endpoint.id));
    globalAgentWith(meshInterceptor(m));
    for (let i = 0; i < 2; i++) {
      const res = await request(`http://localhost:${b.port}/x`);
      expect(await res.body.text()).toBe('ok');
    }
    expect(seenByMesh).toEqual([]);
    expect(m.snapshot().services).toEqual({});
    expect(b.seen).toHaveLength(2);
  });

  it('retries a 503 of a service through the Agent, and the caller sees the 200', async () => {
    const bad = await backend((_req, res) => res.writeHead(503).end('no'));
    const good = await backend();
    const m = mesh({
      registry: staticRegistry({ users: [bad.address, good.address] }),
      defaults: { balancer: 'round-robin', retry: { minDelayMs: 1, maxDelayMs: 2 }, breaker: false, outlier: false },
      random: () => 0,
    });
    globalAgentWith(meshInterceptor(m));
    const { statusCode, body } = await request('http://users/x');
    expect(statusCode).toBe(200);
    expect(await body.text()).toBe('ok');
    expect(bad.seen).toHaveLength(1);
  });

  it('global fetch through the intercepted Agent reaches the service', async () => {
    const b = await backend((_req, res) => res.end('via fetch'));
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const agent = new Agent();
    agents.push(agent);
    const res = await fetch('http://users/f', { dispatcher: agent.compose(meshInterceptor(m)) } as RequestInit);
    expect([res.status, await res.text()]).toEqual([200, 'via fetch']);
  });
});
