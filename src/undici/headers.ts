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

/** Request headers as undici accepts them: an object, a flat array, an array of pairs, or an iterable of pairs. */
export type RequestHeaders = Record<string, string | string[] | undefined> | readonly unknown[] | Iterable<readonly [string, string]> | null | undefined;

/** The value of request header `name` (lower case), whatever the shape; `undefined` when absent. */
export function requestHeader(headers: RequestHeaders, name: string): string | undefined {
  if (headers === null || headers === undefined) return undefined;
  const values: string[] = [];
  forEachHeader(headers, (key, value) => {
    if (key.toLowerCase() === name) values.push(value);
  });
  return values.length === 0 ? undefined : values.join(', ');
}

/** `headers` plus `name: value`, unless `headers` already has `name`; a new object, the caller's untouched. */
export function withHeader(headers: RequestHeaders, name: string, value: string): RequestHeaders {
  if (requestHeader(headers, name) !== undefined) return headers;
  const out: Record<string, string | string[]> = {};
  if (headers !== null && headers !== undefined) {
    forEachHeader(headers, (key, v) => {
      const prev = out[key];
      out[key] = prev === undefined ? v : ([] as string[]).concat(prev, v);
    });
  }
  out[name] = value;
  return out;
}

function forEachHeader(headers: NonNullable<RequestHeaders>, visit: (name: string, value: string) => void): void {
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as readonly (readonly [unknown, unknown])[]) visit(String(pair[0]), String(pair[1]));
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) {
        const v = headers[i + 1];
        if (Array.isArray(v)) for (const x of v) visit(String(headers[i]), String(x));
        else visit(String(headers[i]), String(v));
      }
    }
    return;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [key, value] of headers as Iterable<readonly [string, string]>) visit(String(key), String(value));
    return;
  }
  const object = headers as Record<string, string | string[] | undefined>;
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) visit(key, String(v));
    else visit(key, String(value));
  }
}
