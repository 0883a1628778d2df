import type { Step } from './step.js';

/**
 * The endpoints step: only a cold cache (the service's first list) waits for discovery, single-flight, and
 * that wait ends when the call stops (caller's abort, total deadline, close). Later calls never wait: a list
 * past its TTL is refreshed in the background while the stale one serves.
 */
export const endpointsStep: Step = {
  name: 'endpoints',
  run(call, next) {
    const loading = call.target.prepare(call.startedAt);
    if (loading === undefined) return next(call);
    return call.wait(loading).then(() => {
      // An abort that landed as discovery answered still counts: nothing is sent for a stopped call.
      if (call.stopped !== undefined) throw call.stopped;
      return next(call);
    });
  },
};
