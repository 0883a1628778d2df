/**
 * A custom registry is any object with `resolve(service, { signal })`. This one reads Eureka's REST API,
 * `GET /eureka/apps/{APP}` as JSON, and keeps the instances whose status is UP. The mesh caches the list,
 * refreshes it every `discovery.refreshMs`, and serves the last good one while Eureka fails.
 *
 * `npx tsx examples/custom-registry.ts` runs it against a tiny Eureka-shaped server on 127.0.0.1.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createMesh, toEndpoint, type Registry } from 'proxyless';

interface EurekaInstance {
  instanceId?: string;
  hostName: string;
  ipAddr?: string;
  status: string; // UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN
  port: { $: number | string };
  metadata?: Record<string, string>;
}

export function eurekaRegistry({ url, fetch = globalThis.fetch }: { url: string; fetch?: typeof globalThis.fetch }): Registry {
  const base = url.replace(/\/+$/, '');
  return {
    async resolve(service, { signal }) {
      const app = encodeURIComponent(service.toUpperCase()); // Eureka keeps application names upper-case
      const res = await fetch(`${base}/eureka/apps/${app}`, { signal, headers: { accept: 'application/json' } });
      if (res.status === 404) return []; // no such application: no endpoints (not a failure)
      if (!res.ok) throw new Error(`Eureka answered ${res.status} for ${app}: ${(await res.text()).slice(0, 200)}`);
      const body = (await res.json()) as { application?: { instance?: EurekaInstance | EurekaInstance[] } };
      const found = body.application?.instance ?? [];
      // Eureka's Jersey/XStream JSON sends a single instance as an object, not a one-element array.
      return (Array.isArray(found) ? found : [found])
        .filter((i) => i.status === 'UP')
        .map((i) => {
          // An empty map comes as { "@class": "java.util.Collections$EmptyMap" }: drop the '@' keys.
          const meta = Object.fromEntries(Object.entries(i.metadata ?? {}).filter(([k]) => !k.startsWith('@')));
          const port = Number(i.port.$);
          const weight = meta.weight === undefined ? undefined : Number(meta.weight);
          const id = i.instanceId ?? `${i.hostName}:${port}`;
          return toEndpoint({ id, host: i.ipAddr || i.hostName, port, weight, zone: meta.zone, meta }, `eureka ${app}`);
        });
    },
  };
}

// Run directly: one node:http server plays both Eureka and the USERS instance it lists.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = http.createServer((req, res) => {
    const { port } = server.address() as AddressInfo;
    if (req.url !== '/eureka/apps/USERS') return void res.end(`hello from users on port ${port}\n`);
    const instance = { instanceId: `localhost:users:${port}`, hostName: 'localhost', ipAddr: '127.0.0.1', status: 'UP', port: { $: port, '@enabled': 'true' } };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ application: { name: 'USERS', instance: [instance] } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const mesh = createMesh({ registry: eurekaRegistry({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }) });
  try {
    process.stdout.write(await (await mesh.fetch('http://users/hello')).text());
  } finally {
    await mesh.close();
    server.closeAllConnections();
    server.close();
  }
}
