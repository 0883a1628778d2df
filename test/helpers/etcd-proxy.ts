// A TCP proxy in front of a test etcd (test/helpers/etcd-server.ts) that can be switched off.
import net from 'node:net';

/** A TCP proxy in front of etcd that can be made to fail: connections are then cut at once, old and new. */
export interface EtcdProxy {
  /** `http://127.0.0.1:<port>`: give it to the registry as its endpoint. */
  readonly url: string;
  /** Client connections open through the proxy now (idle keep-alive ones included). */
  readonly connections: number;
  /**
   * Open client connections that carried a `/v3/watch` request: a watch stream holds its connection until the
   * stream is aborted (to see that a closed registry left none; idle pooled connections are not counted).
   */
  readonly watchConnections: number;
  /** From now on, every connection is reset: open ones at once, new ones as they come. */
  fail(): void;
  /** Forwards again. */
  recover(): void;
  close(): Promise<void>;
}

export async function startEtcdProxy(target: string): Promise<EtcdProxy> {
  const { hostname, port } = new URL(target);
  let failing = false;
  const sockets = new Set<net.Socket>();
  const clients = new Set<net.Socket>();
  const watching = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    if (failing) return void downstream.resetAndDestroy();
    const upstream = net.connect(Number(port), hostname);
    sockets.add(downstream).add(upstream);
    clients.add(downstream);
    downstream.on('data', (chunk: Buffer) => {
      if (chunk.includes('POST /v3/watch ')) watching.add(downstream);
    });
    const drop = (): void => {
      clients.delete(downstream);
      watching.delete(downstream);
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${own}`,
    get connections() {
      return clients.size;
    },
    get watchConnections() {
      return watching.size;
    },
    fail() {
      failing = true;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    recover() {
      failing = false;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        server.close(() => done());
      }),
  };
}

