import type { MeshEmitter } from '../observe/emitter.js';
import type { Clock } from '../util/clock.js';
import type { TimeoutList } from '../util/timeout-list.js';
import type { CallInstrument } from './instrument.js';

/** What the mesh gives every call. */
export interface CallEnv {
  readonly clock: Clock;
  readonly events: MeshEmitter;
  readonly isClosed: () => boolean;
  /** The shared attempt-timeout list for a duration: every attempt in flight is in one. */
  readonly attemptTimeouts: (attemptMs: number) => TimeoutList;
  /**
   * The shared total-deadline list for a duration: every call from admission until it is over (its result
   * handed out, and a streaming body read or abandoned) is in one, so `close()` finds every call there.
   */
  readonly callDeadlines: (totalMs: number) => TimeoutList;
  /** The tracing hooks `withTelemetry` sets (instrument.ts); undefined while it is off: one check per call and attempt. */
  instrument: CallInstrument | undefined;
}
