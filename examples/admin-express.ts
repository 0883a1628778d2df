/**
 * The admin handler under Express 5, at /admin. `app.use` strips its mount path, so the handler needs no
 * `prefix`; it answers every method itself (GET and HEAD, 405 for the others) and 404 for unknown paths.
 *
 * `npx tsx examples/admin-express.ts` serves it on 127.0.0.1:9901 (or $PORT) until Ctrl-C.
 */
import express, { type Express } from 'express';
import { pathToFileURL } from 'node:url';
import { createMesh, staticRegistry, type Mesh } from 'proxyless';

export function adminApp(mesh: Mesh): Express {
  const app = express();
  app.use('/admin', mesh.adminHandler());
  app.get('/', (_req, res) => void res.send('the app itself\n'));
  return app;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const mesh = createMesh({ registry: staticRegistry({ users: ['127.0.0.1:8081'] }), name: 'edge' });
  const port = Number(process.env.PORT ?? 9901);
  const server = adminApp(mesh).listen(port, '127.0.0.1', () => console.log(`admin at http://127.0.0.1:${port}/admin/`));
  process.once('SIGINT', () => server.close(() => void mesh.close()));
}
