/**
 * Sets `record[key]` as an own, enumerable data property, whatever `key` is: a plain assignment of `__proto__`
 * would replace the record's prototype (and a write through it, Object.prototype), and a name such as
 * `constructor` would find Object.prototype's. The record stays a plain object (`toEqual`, `JSON.stringify`).
 * For records keyed by user input: service, route and subset names, header names from a config source.
 */
export function define<T>(record: Record<string, T>, key: string, value: T): T {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  return value;
}

/** `record[key]` when it is an own property, else `make()`, defined as one (see {@link define}). */
export function ownOrDefine<T>(record: Record<string, T>, key: string, make: () => T): T {
  return Object.hasOwn(record, key) ? record[key]! : define(record, key, make());
}
