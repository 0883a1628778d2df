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
  /** Wrappers by event, then by listener, so one function may listen to several events. */
  private readonly wrappers = new Map<string, WeakMap<(...args: never[]) => unknown, (payload: unknown) => void>>();
  /**
   * Which events have listeners: one lookup on the call path instead of `listenerCount`. A Set, not an object
   * keyed by event name: names like 'discovery-update' put such an object in dictionary mode, and a profile of
   * the undici path showed its reads at ~80 ns each, a handful per call.
   */
  private readonly listened = new Set<MeshEventName>();

  on<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    this.ee.on(event, this.wrap(event, listener));
    this.listened.add(event);
    return this;
  }

  once<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    this.ee.once(event, this.wrap(event, listener));
    this.listened.add(event);
    return this;
  }

  off<E extends MeshEventName>(event: E, listener: Listener<E>): this {
    const wrapped = this.wrappers.get(event)?.get(listener as (...args: never[]) => unknown);
    if (wrapped) this.ee.off(event, wrapped);
    this.note(event);
    return this;
  }

  private note(event: MeshEventName): void {
    if (this.ee.listenerCount(event) > 0) this.listened.add(event);
    else this.listened.delete(event);
  }

  /** Cheap check for the hot path: build a payload only when somebody listens. */
  has(event: MeshEventName): boolean {
    return this.listened.has(event);
  }

  emit<E extends MeshEventName>(event: E, payload: MeshEvents[E]): void {
    this.ee.emit(event, payload);
    this.note(event); // a `once` listener may have gone
  }

  removeAll(): void {
    this.ee.removeAllListeners();
    this.listened.clear();
  }

  private wrap<E extends MeshEventName>(event: E, listener: Listener<E>): (payload: unknown) => void {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${event}' must be a function`);
    let byListener = this.wrappers.get(event);
    if (byListener === undefined) this.wrappers.set(event, (byListener = new WeakMap()));
    const existing = byListener.get(listener as (...args: never[]) => unknown);
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
    byListener.set(listener as (...args: never[]) => unknown, wrapped);
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
