/** Names the backend a route chose: a subset of the service, another service, or a subset of another service. */
export interface BackendLabel {
  readonly subset?: string;
  readonly service?: string;
}

/** The `backend` label value of a backend: `v2`, `service:users-canary`, `service:users-canary/v2`, or `*` (the whole service). */
export function backendLabel(label: BackendLabel): string {
  if (label.service === undefined) return label.subset ?? '*';
  return label.subset === undefined ? `service:${label.service}` : `service:${label.service}/${label.subset}`;
}

/** The calls one route sent to one of its backends, by outcome. */
export class BackendStats {
  /** Calls that ended, by outcome (indexed by `OUTCOME` of service-metrics.ts). */
  readonly outcomes: Float64Array;

  constructor(
    readonly label: string,
    outcomes: number,
  ) {
    this.outcomes = new Float64Array(outcomes);
  }

  get total(): number {
    let n = 0;
    for (const v of this.outcomes) n += v;
    return n;
  }
}

/**
 * The counters of one route of a service: calls per backend and outcome, injected faults, mirrored requests.
 * Kept by route name across configurations (a counter must not restart because a weight changed), and exported
 * with a `route` label.
 */
export class RouteStats {
  readonly backends = new Map<string, BackendStats>();
  /** Faults injected, by kind. */
  delays = 0;
  aborts = 0;
  /** Mirrored requests sent, and how they ended (they never reach the caller). */
  mirrored = 0;
  mirrorSucceeded = 0;
  mirrorFailed = 0;

  constructor(
    readonly route: string,
    /** How many call outcomes there are (service-metrics.ts's `CALL_OUTCOMES`). */
    private readonly outcomes: number,
  ) {}

  backend(label: string): BackendStats {
    let stats = this.backends.get(label);
    if (stats === undefined) this.backends.set(label, (stats = new BackendStats(label, this.outcomes)));
    return stats;
  }
}
