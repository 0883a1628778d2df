import { FaultInjectedError } from '../errors.js';
import type { Call, InjectedFault } from './call.js';
import { pause } from '../util/pause.js';
import { below, type Step } from './step.js';

/**
 * The route step, in the stacks of routes that inject faults or mirror requests only (every other call keeps
 * the plain stack), right below admission:
 * - a fault first (Envoy's HTTP fault filter, gRPC A33): before discovery, any pick and any network use. A delay
 *   waits within the call's deadline (a delay past it ends in the total `TimeoutError`, nothing sent); an abort is
 *   final, above the retry step, so it is never retried;
 * - then the mirror, fired as the request goes on: like Envoy's router, a request that admission refused or a
 *   fault aborted is not mirrored.
 * Which calls get a fault or a mirror is drawn when the route is chosen (see `RoutePlan`).
 */
export class RouteStep implements Step {
  readonly name = 'route';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    const fault = call.drawn?.fault;
    if (fault === undefined || fault.delayMs <= 0) return this.abortOrGo(call, fault);
    return call.wait(pause(fault.delayMs, call.sleepSignal())).then(() => {
      if (call.stopped !== undefined) throw call.stopped;
      call.now = call.env.clock.now();
      return this.abortOrGo(call, fault);
    });
  }

  private abortOrGo(call: Call, fault: InjectedFault | undefined): Promise<unknown> {
    if (fault?.abortStatus !== undefined) {
      return Promise.reject(new FaultInjectedError(call.target.name, fault.abortStatus, fault.route));
    }
    call.drawn?.mirror?.fire();
    return this.next.run(call);
  }
}
