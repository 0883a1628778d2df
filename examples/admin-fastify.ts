/**
 * The admin handler under Fastify 5, at /admin. Two things matter, and without them every path is 404:
 * - Fastify hands the handler the full URL (`request.raw.url` is `/admin/metrics`), so give `prefix: '/admin'`;
 * - the handler writes `reply.raw` itself, so call `reply.hijack()` first: Fastify then sends nothing of its own.
 * Register both `/admin` and `/admin/*`, for every method (the handler answers 405 itself).
 *
 * `npx tsx examples/admin-fastify.ts` serves it on 127.0.0.1:9901 (or $PORT) until Ctrl-C.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { pathToFileURL } from 'node:url';
import { createMesh, staticRegistry, type Mesh } from 'proxyless';

export function adminApp(mesh: Mesh): FastifyInstance {
  const app = Fastify();
  const admin = mesh.adminHandler({ prefix: '/admin' });
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
  for (const url of ['/admin', '/admin/*']) {
    // exposeHeadRoute: false, so that HEAD reaches the handler rather than Fastify's own HEAD route.
    app.route({ method: [...methods], url, exposeHeadRoute: false, handler: (request, reply) => {
      reply.hijack();
      admin(request.raw, reply.raw);
    } });
  }
  app.get('/', async () => 'the app itself\n');
  return app;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const mesh = createMesh({ registry: staticRegistry({ users: ['127.0.0.1:8081'] }), name: 'edge' });
  const app = adminApp(mesh);
  const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 9901) });
  console.log(`admin at ${address}/admin/ (metrics: ${address}/admin/metrics)`);
  process.once('SIGINT', () => void app.close().then(() => mesh.close()));
}
