/**
 * Request headers in every shape undici accepts in a dispatch (an object, a flat array, an array of pairs, an
 * iterable of pairs): what the undici path and the fetch path's dispatcher read and add to.
 */

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

/**
 * `headers` plus `name: value`, unless `headers` already has `name` (lower case, matched without regard to case);
 * a new object, the caller's untouched.
 */
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

/**
 * `headers` as name/value pairs (fetch's `HeadersInit` sequence), less every header named `name` (lower case,
 * matched without regard to case): the base a header of the mesh's own is appended to, per attempt. Made once
 * per call, and only when such a header is sent.
 */
export function headerPairsWithout(headers: RequestHeaders, name: string): [string, string][] {
  const out: [string, string][] = [];
  if (headers !== null && headers !== undefined) {
    forEachHeader(headers, (key, value) => {
      if (key.toLowerCase() !== name) out.push([key, value]);
    });
  }
  return out;
}

/**
 * `headers` as an object (undici's dispatch shape: a repeated name becomes an array), less every header named
 * `name` (lower case, matched without regard to case). Made once per call, and only when such a header is sent.
 */
export function headerObjectWithout(headers: RequestHeaders, name: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (headers !== null && headers !== undefined) {
    forEachHeader(headers, (key, value) => {
      if (key.toLowerCase() === name) return;
      const prev = out[key];
      out[key] = prev === undefined ? value : ([] as string[]).concat(prev, value);
    });
  }
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
