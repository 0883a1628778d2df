/**
 * `npx tsx examples/dns.ts`: DNS SRV discovery, all on loopback (no outside network).
 *
 * A small DNS server (dns2) answers `_http._tcp.users` with two SRV records pointing at two local node:http
 * backends, weights 3 and 1. A mesh with `dnsRegistry` calls `http://users/`: traffic splits 3 : 1. Then the
 * records change (weights 1 and 3, TTL 1 s) and, once the TTL has run out, the split follows. Then it exits.
 */
import { Packet, UDPServer } from 'dns2';
import { createMesh, dnsRegistry, type Mesh } from 'proxyless';
import { startBackends, type Backend } from './backends.js';

interface Srv {
  target: string;
  port: number;
  priority: number;
  weight: number;
}

/**
 * RFC 2782 forbids name compression in an SRV target; dns2 3.0.0 compresses it, which the c-ares of Node 22 and
 * 24 rejects (EBADRESP). Write SRV data uncompressed.
 */
const srvResource = Packet.Resource as unknown as { SRV: { encode(r: Srv, w: { write(value: number, bits: number): void }): void } };
srvResource.SRV.encode = (r, w) => {
  w.write(r.priority, 16);
  w.write(r.weight, 16);
  w.write(r.port, 16);
  for (const label of r.target.split('.').filter(Boolean)) {
    w.write(label.length, 8);
    for (let i = 0; i < label.length; i++) w.write(label.charCodeAt(i), 8);
  }
  w.write(0, 8);
};

/** An authoritative DNS server on 127.0.0.1 (a free port) for SRV and A records, editable while it runs. */
async function startDns(): Promise<{ address: string; srv: Map<string, Srv[]>; a: Map<string, string>; close(): Promise<void> }> {
  const srv = new Map<string, Srv[]>();
  const a = new Map<string, string>();
  const TTL = 1; // seconds: changes show within a second
  const server = new UDPServer((request, send) => {
    const q = request.questions[0]!;
    const response = Packet.createResponseFromRequest(request);
    const name = q.name.toLowerCase();
    if (q.type === Packet.TYPE.SRV && srv.has(name)) {
      for (const r of srv.get(name)!) response.answers.push({ name: q.name, type: q.type, class: Packet.CLASS.IN, ttl: TTL, ...r } as never);
    } else if (q.type === Packet.TYPE.A && a.has(name)) {
      response.answers.push({ name: q.name, type: q.type, class: Packet.CLASS.IN, ttl: TTL, address: a.get(name)! } as never);
    } else if (!srv.has(name) && !a.has(name)) {
      response.header.rcode = 3; // NXDOMAIN
    }
    void send(response);
  });
  await server.listen(0, '127.0.0.1');
  return {
    address: `127.0.0.1:${server.address().port}`,
    srv,
    a,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function split(mesh: Mesh, calls: number): Promise<string> {
  const counts = new Map<string, number>();
  for (let i = 0; i < calls; i++) {
    const body = (await (await mesh.fetch('http://users/')).text()).trim();
    counts.set(body, (counts.get(body) ?? 0) + 1);
  }
  return [...counts].sort().map(([name, n]) => `${name}: ${n}`).join(', ');
}

async function main(): Promise<void> {
  const backends: Backend[] = await startBackends([
    { name: 'users-a', body: 'users-a\n' },
    { name: 'users-b', body: 'users-b\n' },
  ]);
  const dns = await startDns();
  const publish = (wa: number, wb: number): void => {
    dns.srv.set('_http._tcp.users', [
      { target: 'users-a.node.test', port: backends[0]!.port, priority: 10, weight: wa },
      { target: 'users-b.node.test', port: backends[1]!.port, priority: 10, weight: wb },
    ]);
  };
  dns.a.set('users-a.node.test', '127.0.0.1');
  dns.a.set('users-b.node.test', '127.0.0.1');
  publish(3, 1);

  const mesh = createMesh({
    registry: dnsRegistry({ servers: [dns.address], minTtlMs: 100 }),
    defaults: { balancer: 'round-robin' },
  });
  mesh.on('discovery-update', ({ endpoints }) =>
    console.log(`discovery: ${endpoints.map((e) => `${e.meta.target} (${e.id}) weight ${e.weight}`).join('; ')}`),
  );
  try {
    console.log(`DNS server on ${dns.address}; SRV _http._tcp.users: users-a weight 3, users-b weight 1`);
    console.log(`40 calls: ${await split(mesh, 40)}`);
    publish(1, 3);
    console.log('records changed: users-a weight 1, users-b weight 3 (TTL 1 s)');
    await new Promise((r) => setTimeout(r, 1_300));
    console.log(`40 calls: ${await split(mesh, 40)}`);
  } finally {
    await mesh.close();
    await dns.close();
    await Promise.all(backends.map((b) => b.close()));
  }
  // Nothing is left open: the process exits by itself.
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
