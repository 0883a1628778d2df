import { withHeader, type RequestHeaders } from './request-headers.js';
import { servernameFor, tlsConnectOptions, type TlsPolicy } from './tls.js';

/** The part of a service's policy that fetch cannot carry out by itself. */
export interface DispatchPolicy {
  readonly tls: Readonly<TlsPolicy> | undefined;
  readonly host: 'service' | 'endpoint';
}

/** What an undici `Dispatcher` is to this module: passed to fetch as `dispatcher`, closed with the service. */
interface DispatcherLike {
  close(): Promise<void>;
  destroy(): Promise<void>;
}

type Undici = typeof import('undici');

/**
 * The dispatcher of one service for `mesh.fetch`, when its policy asks what fetch cannot do: its own TLS
 * (`tls`: CAs, a client certificate, an SNI that is the service name when the endpoint is an IP address), or
 * `host: 'service'` (fetch drops a `Host` header; a dispatcher may set it). It is an undici `Agent` of the
 * application's own undici (an optional peer dependency), imported on the first call that needs it, so that
 * the core imports no undici; that first call waits for the import. Both global fetch and undici's fetch take
 * it as `init.dispatcher`; a caller's own `dispatcher` wins. Closed with the service (and the mesh).
 */
export class ServiceDispatcher {
  private dispatcher: DispatcherLike | undefined;
  private loading: Promise<DispatcherLike> | undefined;
  private closed = false;

  constructor(
    private readonly service: string,
    private readonly policy: DispatchPolicy,
  ) {}

  /** Whether `policy` needs one. */
  static wanted(policy: DispatchPolicy): boolean {
    return policy.tls !== undefined || policy.host === 'service';
  }

  /** The dispatcher, or (on the first use) a promise of it. */
  get(): DispatcherLike | Promise<DispatcherLike> {
    return this.dispatcher ?? (this.loading ??= this.load());
  }

  /** `'destroy'` aborts what is in flight (the mesh closes); `'close'` lets it finish (the service is retired). */
  async close(how: 'close' | 'destroy' = 'destroy'): Promise<void> {
    this.closed = true;
    const current = this.dispatcher ?? (await this.loading?.catch(() => undefined));
    this.dispatcher = undefined;
    await (how === 'close' ? current?.close() : current?.destroy())?.catch(() => undefined);
  }

  private async load(): Promise<DispatcherLike> {
    let undici: Undici;
    try {
      undici = await import('undici');
    } catch (cause) {
      this.loading = undefined; // a later call may find it installed
      throw new Error(
        `services.${this.service}: 'tls' and host: 'service' on mesh.fetch need the optional peer dependency undici (npm install undici)`,
        { cause },
      );
    }
    const made = this.make(undici);
    if (this.closed) {
      await made.destroy();
      throw new Error(`the mesh closed while ${this.service}'s dispatcher was being made`);
    }
    this.dispatcher = made;
    return made;
  }

  private make(undici: Undici): DispatcherLike {
    const { tls, host } = this.policy;
    const service = this.service;
    const options: ConstructorParameters<Undici['Agent']>[0] = {};
    if (tls !== undefined) {
      // CAs, client certificate and verification as the pools of the undici path get them (servername per connection).
      const { servername: _perEndpoint, ...common } = tlsConnectOptions(tls, service, service);
      const connector = undici.buildConnector(common as Parameters<Undici['buildConnector']>[0]);
      // The SNI of each connection is the policy's, never one derived from a Host header.
      options.connect = (opts, callback) => connector({ ...opts, servername: servernameFor(tls, service, opts.hostname) }, callback);
    }
    const agent = new undici.Agent(options);
    if (host !== 'service') return agent;
    const composed = agent.compose(
      (dispatch) => (opts, handler) => dispatch({ ...opts, headers: withHeader(opts.headers as RequestHeaders, 'host', service) as typeof opts.headers }, handler),
    );
    return composed as unknown as DispatcherLike;
  }
}
