/**
 * The sidecars: a local nginx and a local HAProxy in front of the backends, each one process with one
 * worker thread (so its CPU time is one /proc entry), in the foreground, listening on 127.0.0.1 only, with
 * config, pid, temp files and logs in a temp dir of ours. Both are tuned the way a sidecar would be:
 * keep-alive to the client and pooled keep-alive connections to the backends, no access logging.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';
export const HAPROXY = '/usr/sbin/haproxy';

export interface Proxy {
  readonly name: 'nginx' | 'haproxy';
  readonly port: number;
  /** The process that does the proxying (nginx runs with `master_process off`, so it is the worker). */
  readonly pid: number;
  /** Its CPU time so far (user + system), from /proc/<pid>/stat. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

/**
 * Installs the Debian packages of the proxies that are missing, unless BENCH_NO_INSTALL=1 or we are not
 * root. Returns why each missing one is still missing (keyed by binary path), so the bench can skip its row.
 */
export function ensureProxies(): Map<string, string> {
  const wanted = [
    { bin: NGINX, pkg: 'nginx-light' },
    { bin: HAPROXY, pkg: 'haproxy' },
  ];
  const missing = wanted.filter((w) => !existsSync(w.bin));
  const why = new Map<string, string>();
  if (missing.length === 0) return why;
  const pkgs = missing.map((m) => m.pkg);
  let reason: string | undefined;
  if (process.env.BENCH_NO_INSTALL === '1') reason = 'BENCH_NO_INSTALL=1';
  else if (process.getuid?.() !== 0) reason = 'not root, cannot apt-get install';
  else {
    console.log(`installing ${pkgs.join(' ')} (apt-get install -y; set BENCH_NO_INSTALL=1 to skip) ...`);
    // The lock timeout lets an install already under way (apt, unattended-upgrades) finish first.
    const r = spawnSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=180', ...pkgs], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 600_000,
    });
    if (r.status !== 0) reason = `apt-get install failed: ${(r.stderr?.toString() || String(r.error ?? r.status)).trim().split('\n').pop()}`;
  }
  for (const m of missing) {
    if (!existsSync(m.bin)) why.set(m.bin, `package ${m.pkg} not installed (${reason ?? 'install did not provide it'})`);
  }
  return why;
}

/** A port that was free a moment ago: bind 127.0.0.1:0, read the port, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port from 127.0.0.1:0');
  return address.port;
}

let clockTicks: number | undefined;

/** utime + stime (fields 14 and 15 of /proc/<pid>/stat) in seconds, over CLK_TCK. */
export function procCpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces; count fields after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 14 is fields[11] and 15 is fields[12].
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

function nginxConfig(dir: string, port: number, backends: readonly number[]): string {
  return `
worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # nginx's default caps (1000 requests per connection) would close and reopen sockets mid-run.
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream users {
    ${backends.map((p) => `server 127.0.0.1:${p};`).join('\n    ')}
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://users;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

function haproxyConfig(port: number, backends: readonly number[]): string {
  return `
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  no log
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend users
backend users
  balance roundrobin
${backends.map((p, i) => `  server b${i + 1} 127.0.0.1:${p}`).join('\n')}
`;
}

/** Starts nginx or HAProxy under `dir`, and waits until its port accepts connections. */
export async function startProxy(name: Proxy['name'], dir: string, backends: readonly number[]): Promise<Proxy> {
  const port = await freePort();
  let child: ChildProcess;
  let logFile: string;
  if (name === 'nginx') {
    for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d), { recursive: true });
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConfig(dir, port, backends));
    logFile = join(dir, 'nginx-error.log');
    // -e: the log nginx writes before it has read the config would otherwise go to /var/log/nginx.
    child = spawn(NGINX, ['-p', dir, '-e', logFile, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    const conf = join(dir, 'haproxy.cfg');
    writeFileSync(conf, haproxyConfig(port, backends));
    logFile = conf;
    // -db: foreground, no daemon, no master process; the child is the one proxying process.
    child = spawn(HAPROXY, ['-db', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const close = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForPort(port, child, 10_000);
  } catch (error) {
    await close();
    const log = existsSync(logFile) && name === 'nginx' ? readFileSync(logFile, 'utf8') : '';
    throw new Error(`${name} did not start: ${(error as Error).message}; ${stderr.trim()} ${log.trim()}`.trim());
  }
  const pid = child.pid!;
  return { name, port, pid, cpuSeconds: () => procCpuSeconds(pid), close };
}

/** Connects to 127.0.0.1:port every 50 ms until it answers, the process exits, or `ms` passes. */
async function waitForPort(port: number, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not open after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
