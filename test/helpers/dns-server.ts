import dgram from 'node:dgram';
import net from 'node:net';
import { Packet, UDPServer } from 'dns2';

/** One SRV record's data (RFC 2782): `target` '.' (or '') is the root. */
export interface SrvData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

/** How the server treats a query: answer from the zone, answer with an error rcode, or never answer. */
export type Behaviour = 'answer' | 'SERVFAIL' | 'REFUSED' | 'NXDOMAIN' | 'FORMERR' | 'NOTIMP' | 'drop';

const RCODE: Record<Exclude<Behaviour, 'answer' | 'drop'>, number> = { FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const TYPE_NAMES: Record<number, string> = { 1: 'A', 28: 'AAAA', 33: 'SRV' };

type Rdata = { address: string } | { priority: number; weight: number; port: number; target: string };

/**
 * RFC 2782: "name compression is not to be used" for an SRV target. dns2 3.0.0 compresses it anyway (a target
 * sharing a suffix with an earlier name becomes a pointer), and the c-ares of Node 22 and 24 (1.34.8) rejects
 * such an answer with EBADRESP, while Node 20's (1.34.6) accepts it. So SRV data is written uncompressed here.
 */
export function writeSrvUncompressed(): void {
  const resource = Packet.Resource as unknown as { SRV: { encode(record: SrvData, writer: { write(value: number, bits: number): void }): void } };
  resource.SRV.encode = (record, writer) => {
    writer.write(record.priority, 16);
    writer.write(record.weight, 16);
    writer.write(record.port, 16);
    for (const label of record.target.split('.').filter(Boolean)) {
      writer.write(label.length, 8);
      for (let i = 0; i < label.length; i++) writer.write(label.charCodeAt(i), 8);
    }
    writer.write(0, 8);
  };
}

/**
 * An authoritative test DNS server (dns2, UDP) on 127.0.0.1, port 0, with a zone the test edits live.
 * A name with no record at all is NXDOMAIN; a name with records of other types only (or made with
 * `exists`) is NODATA for the rest. Names are case-insensitive.
 */
export interface DnsTestServer {
  readonly port: number;
  /** `127.0.0.1:<port>`, for `dnsRegistry({ servers: [server.address] })`. */
  readonly address: string;
  /** Replaces the SRV records at `name` (an empty list removes them). */
  srv(name: string, records: readonly SrvData[], ttl?: number): void;
  /** Replaces the A records at `name`. */
  a(name: string, addresses: readonly string[], ttl?: number): void;
  /** Replaces the AAAA records at `name`. */
  aaaa(name: string, addresses: readonly string[], ttl?: number): void;
  /** Makes `name` exist with whatever records it has (none: NODATA for every type). */
  exists(name: string): void;
  /** Removes every record at `name`: NXDOMAIN. */
  remove(name: string): void;
  /** Empties the zone and the query log, and answers every query again (forgets `behave`). */
  clear(): void;
  /** Treats every query (or only those for `name`) so, until set back to 'answer'. */
  behave(behaviour: Behaviour, name?: string): void;
  /** Every query received, in order. */
  readonly queries: { readonly name: string; readonly type: string; readonly at: number }[];
  /** Queries for `name` (and `type`, if given). */
  count(name: string, type?: string): number;
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<DnsTestServer> {
  writeSrvUncompressed();
  const zone = new Map<string, Map<number, { ttl: number; data: Rdata }[]>>();
  const behaviours = new Map<string, Behaviour>();
  let everyName: Behaviour = 'answer';
  const queries: { name: string; type: string; at: number }[] = [];

  const types = (name: string): Map<number, { ttl: number; data: Rdata }[]> => {
    const key = name.toLowerCase();
    let t = zone.get(key);
    if (!t) zone.set(key, (t = new Map()));
    return t;
  };
  const put = (name: string, type: number, list: readonly Rdata[], ttl: number): void => {
    const t = types(name);
    if (list.length === 0) t.delete(type);
    else t.set(type, list.map((data) => ({ ttl, data })));
    if (t.size === 0) zone.delete(name.toLowerCase());
  };

  const server = new UDPServer((request, send) => {
    const question = request.questions[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    queries.push({ name, type: TYPE_NAMES[question.type] ?? String(question.type), at: performance.now() });
    const behaviour = behaviours.get(name) ?? everyName;
    if (behaviour === 'drop') return;
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    if (behaviour !== 'answer') {
      response.header.rcode = RCODE[behaviour];
    } else {
      const records = zone.get(name);
      if (!records) response.header.rcode = RCODE.NXDOMAIN;
      for (const { ttl, data } of records?.get(question.type) ?? []) {
        response.answers.push({ name: question.name, type: question.type, class: Packet.CLASS.IN, ttl, ...data } as never);
      }
    }
    void send(response).catch(() => {});
  });
  await server.listen(0, '127.0.0.1');
  const port = server.address().port;

  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    srv: (name, records, ttl = 1) =>
      put(name, Packet.TYPE.SRV, records.map((r) => ({ ...r, target: r.target === '.' ? '' : r.target })), ttl),
    a: (name, addresses, ttl = 1) => put(name, Packet.TYPE.A, addresses.map((address) => ({ address })), ttl),
    aaaa: (name, addresses, ttl = 1) => put(name, Packet.TYPE.AAAA, addresses.map((address) => ({ address })), ttl),
    exists: (name) => void types(name),
    remove: (name) => void zone.delete(name.toLowerCase()),
    clear() {
      zone.clear();
      behaviours.clear();
      everyName = 'answer';
      queries.length = 0;
    },
    behave(behaviour, name) {
      if (name === undefined) everyName = behaviour;
      else if (behaviour === 'answer') behaviours.delete(name.toLowerCase());
      else behaviours.set(name.toLowerCase(), behaviour);
    },
    count: (name, type) => queries.filter((q) => q.name === name.toLowerCase() && (type === undefined || q.type === type)).length,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback UDP port with nothing listening: a DNS query to it is refused (ICMP port unreachable, on Linux). */
export async function deadUdpAddress(): Promise<string> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

/** A loopback port free for both UDP and TCP at the time of asking (for a DNS server that binds both). */
export async function freeDnsPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as net.AddressInfo;
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve());
      } catch {
        resolve(); // already closed by the failed bind
      }
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no loopback port free for both UDP and TCP');
}
