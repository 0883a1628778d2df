import { InvalidServiceNameError } from './errors.js';
import { Service } from './service.js';
import { serviceNameProblem } from './util/service-name.js';

/**
 * The mesh's services by name, bounded. A service is made on its first call; past `limit` services (the
 * discovery cache's `maxServices`), the one idle longest (no call in flight) is retired to make room, and so
 * is a service whose list the discovery cache evicted while it was idle. A retired service's breakers stop,
 * its series leave `metrics()` and `snapshot()`, and its next call starts it afresh, as a new service (its
 * counters start again from zero, which Prometheus reads as a counter reset). Without this, every name ever
 * called (4,800 of them: 54 MB, and a 23 MB scrape) would be kept for the life of the process.
 */
export class ServiceTable {
  /** Insertion order; keyed by user input, so a Map (a name like `__proto__` is an ordinary key). */
  private readonly byName = new Map<string, Service>();

  constructor(
    private readonly limit: number,
    private readonly make: (name: string) => Service,
    /** The service left the table: its discovery list and watch go too. */
    private readonly onRetire: (svc: Service) => void,
  ) {}

  get services(): ReadonlyMap<string, Service> {
    return this.byName;
  }

  get(name: string): Service | undefined {
    return this.byName.get(name);
  }

  /** The service called `name`, made on first use (the name is checked then). */
  obtain(name: string): Service {
    const svc = this.byName.get(name);
    if (svc !== undefined) return svc;
    const problem = serviceNameProblem(name);
    if (problem) throw new InvalidServiceNameError(String(name), problem);
    if (this.byName.size >= this.limit) this.retireIdlest();
    const made = this.make(name);
    this.byName.set(name, made);
    return made;
  }

  /** Discovery dropped the list of `name`: retire the service if idle, else make its next call reload it. */
  evicted(name: string): void {
    const svc = this.byName.get(name);
    if (svc === undefined) return;
    if (svc.active === 0) this.retire(svc);
    else svc.markStale();
  }

  values(): IterableIterator<Service> {
    return this.byName.values();
  }

  /** O(services): it runs only when a new service finds the table full. */
  private retireIdlest(): void {
    let idlest: Service | undefined;
    for (const svc of this.byName.values()) {
      if (svc.active === 0 && (idlest === undefined || svc.lastCallAt < idlest.lastCallAt)) idlest = svc;
    }
    // Every service has calls in flight: the table grows past its limit rather than strand one.
    if (idlest !== undefined) this.retire(idlest);
  }

  private retire(svc: Service): void {
    this.byName.delete(svc.name);
    // Gracefully: a body its calls handed out may still stream through mesh.fetch's dispatcher of this service.
    void svc.close(undefined, 'close');
    this.onRetire(svc);
  }
}
