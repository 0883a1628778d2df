import { EventEmitter } from 'eventemitter3';
import type { MeshEventName, MeshEvents } from '../events.js';

type Listener<E extends MeshEventName> = (payload: MeshEvents[E]) => void;

/**
 * The mesh's typed events on eventemitter3. Each listener runs in its own try/catch (and a returned
 * promise gets a catch), so a listener that throws is reported on `listener-error` and never changes
 * a call's outcome or stops the other listeners.
 */
export class MeshEmitter {
  private readonly ee = new EventEmitter();
  private readonly wrappers = new WeakMap<(...args: never[]) => unknown, (payload: unknown) => void>();

  on<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    this.ee.on(event, this.wrap(event, listener));
    return this;
  }

  once<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    this.ee.once(event, this.wrap(event, listener));
    return this;
  }

  off<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    const wrapped = this.wrappers.get(listener as (...args: never[]) => unknown);
    if (wrapped) this.ee.off(event, wrapped);
    return this;
  }

  /** Cheap check for the hot path: build a payload only when somebody listens. */
  has(event: MeshEventName): boolean {
    return this.ee.listenerCount(event) > 0;
  }

  emit<E extends MeshEventName>(event: E, payload: MeshEvents[E]): void {
    this.ee.emit(event, payload);
  }

  removeAll(): void {
    this.ee.removeAllListeners();
  }

  private wrap<E extends MeshEventName>(event: E, listener: Listener<E>): (payload: unknown) => void {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${event}' must be a function`);
    const existing = this.wrappers.get(listener as (...args: never[]) => unknown);
    if (existing) return existing;
    const wrapped = (payload: unknown): void => {
      try {
        const r = (listener as (p: unknown) => unknown)(payload);
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (error) => this.report(event, error));
        }
      } catch (error) {
        this.report(event, error);
      }
    };
    this.wrappers.set(listener as (...args: never[]) => unknown, wrapped);
    return wrapped;
  }

  private report(event: string, error: unknown): void {
    if (event !== 'listener-error' && this.has('listener-error')) {
      this.ee.emit('listener-error', { event, error });
    } else {
      console.error(`proxyless: a '${event}' listener threw`, error);
    }
  }
}
