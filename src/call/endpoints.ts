import type { Call } from './call.js';
import { below, type Step } from './step.js';

/**
 * The endpoints step: only a cold cache (the service's first list) waits for discovery, single-flight, and
 * that wait ends when the call stops (caller's abort, total deadline, close). Later calls never wait: a list
 * past its TTL is refreshed in the background while the stale one serves.
 */
export class EndpointsStep implements Step {
  readonly name = 'endpoints';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    const loading = call.target.shared.prepare(call.startedAt);
    if (loading === undefined) return this.next.run(call);
    return call.wait(loading).then(() => {
      // An abort that landed as discovery answered still counts: nothing is sent for a stopped call.
      if (call.stopped !== undefined) throw call.stopped;
      call.now = call.env.clock.now();
      return this.next.run(call);
    });
  }
}
