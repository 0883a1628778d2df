/**
 * A loopback backend with a fixed capacity, for the overload bench: `slots` requests are served at a time, each
 * for `serviceMs`, and the rest wait in one FIFO queue behind them (a thread pool with an unbounded accept
 * queue). A request whose client gave up while it waited is skipped, not served (optimistic for the client
 * without a limit: real servers often serve it anyway). In a child process, so the client's event loop is the
 * only thing in this one; listens on 127.0.0.1 only and exits when its stdin closes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export interface CapacityServer {
  /** `127.0.0.1:port`. */
  readonly address: string;
  close(): Promise<void>;
}

const CHILD = `
const http = require('node:http');
const [slots, serviceMs] = JSON.parse(process.argv[1]);
let busy = 0;
const queue = [];
const ok = Buffer.from('ok\\n');
const serve = (res) => {
  busy++;
  setTimeout(() => {
    busy--;
    if (!res.destroyed) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': ok.length });
      res.end(ok);
    }
    next();
  }, serviceMs);
};
const next = () => {
  while (busy < slots && queue.length > 0) {
    const res = queue.shift();
    if (!res.destroyed) serve(res);
  }
};
const server = http.createServer((req, res) => {
  req.resume();
  if (busy < slots) serve(res);
  else queue.push(res);
});
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify(server.address().port)));
require('node:readline').createInterface({ input: process.stdin }).on('close', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
`;

/** Starts the backend; resolves once it listens. */
export async function startCapacityServer(slots: number, serviceMs: number): Promise<CapacityServer> {
  const child = spawn(process.execPath, ['-e', CHILD, JSON.stringify([slots, serviceMs])], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill(), 10_000);
  const [line] = (await once(lines, 'line')) as [string];
  clearTimeout(timer);
  const port = JSON.parse(line) as number;
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      lines.close();
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin.end();
      const kill = setTimeout(() => child.kill(), 5_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
