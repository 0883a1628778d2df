/**
 * The own keys of `o` whose value is not `undefined` (a shallow copy). Options typed `key?: T | undefined`, as
 * users of `exactOptionalPropertyTypes` write them (`zone: process.env.ZONE`), mean "not set" by `undefined`:
 * a spread over defaults (`{ ...DEFAULTS, ...o }`) would otherwise put that `undefined` over the default.
 */
export function definedOnly<T extends object>(o: T | undefined): Partial<T> {
  const out: Partial<T> = {};
  if (o === undefined || o === null) return out;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
