/**
 * undici hands headers around in two shapes: the legacy handler API (undici 7's core) as a flat array of
 * raw name/value Buffers, the new one (undici 8's core, and interceptors on 7) as an object of lower-case
 * names. The mesh keeps what the pool gave and converts only when the caller's handler speaks the other one.
 */

/** A response's headers as the pool gave them. */
export type RawHeaders = Buffer[];
export type HeaderObject = Record<string, string | string[] | undefined>;

/** A flat raw array → an object of lower-case names (repeated names become arrays, as undici's parseHeaders). */
export function rawToObject(raw: readonly (Buffer | string | readonly (Buffer | string)[])[] | null | undefined): HeaderObject {
  const out: HeaderObject = {};
  if (!raw) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = String(raw[i]).toLowerCase();
    const v = raw[i + 1] as Buffer | string | readonly (Buffer | string)[];
    const value = Array.isArray(v) ? v.map((x) => x.toString('latin1')) : (v as Buffer | string).toString('latin1');
    const prev = out[name];
    if (prev === undefined) out[name] = value as string | string[];
    else out[name] = ([] as string[]).concat(prev, value as string | string[]);
  }
  return out;
}

/** An object of headers → a flat raw array of Buffers (what a legacy handler's `onHeaders` expects). */
export function objectToRaw(headers: HeaderObject | null | undefined): RawHeaders {
  const raw: RawHeaders = [];
  if (!headers) return raw;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'));
    else raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(value), 'latin1'));
  }
  return raw;
}

/** One header of a raw array (case-insensitive), joined with `, ` when repeated; `null` when absent. */
export function rawHeader(raw: readonly (Buffer | string)[] | null | undefined, name: string): string | null {
  if (!raw) return null;
  let found: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as Buffer | string;
    if (key.length !== name.length || String(key).toLowerCase() !== name) continue;
    const value = String(raw[i + 1]);
    found = found === null ? value : `${found}, ${value}`;
  }
  return found;
}

/** One header of an object (lower-case `name`), joined with `, `; `null` when absent. */
export function objectHeader(headers: HeaderObject | null | undefined, name: string): string | null {
  const value = headers?.[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : String(value);
}
