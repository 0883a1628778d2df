import type { Rng } from '../util/random.js';

/**
 * SRV ordering and weights, after RFC 2782 ("A DNS RR for specifying the location of services").
 *
 * Within one priority, RFC 2782 orders targets by repeated weighted draws. Its text has a known flaw, reported
 * as an erratum: the draw is a uniform number in [0, sum] *inclusive* with the weight-0 records placed first, so
 * a sum of T hands out T + 1 shares and the first record gets the extra one (weights {1, 1} come out 2/3 : 1/3,
 * and {0, 1, 1} gives the weight-0 record a full third). We use the equivalent without the flaw: each record
 * draws the key −ln(U) / w with U uniform in (0, 1], and the records go in increasing key order. That is an
 * exponential race; the record with weight w comes first with probability w / Σw exactly, and the rest of the
 * order is again a weighted draw among the others (successive sampling without replacement; Efraimidis and
 * Spirakis, "Weighted random sampling with a reservoir", 2006).
 */

/** One SRV answer as `node:dns` `resolveSrv` returns it: `name` is the target, `''` for the root (`.`). */
export interface SrvRecord {
  /** The target host name. */
  readonly name: string;
  /** The target port. */
  readonly port: number;
  /** Lower is preferred; a group of one priority is used before the next (RFC 2782). */
  readonly priority: number;
  /** Relative share within a priority group; 0 gets a small share (RFC 2782). */
  readonly weight: number;
}

/**
 * The share of its priority group's total weight that a weight-0 record gets, for the order and for the
 * endpoint weight alike. RFC 2782: "In the presence of records containing weights greater than 0, records
 * with weight 0 should have a very small chance of being selected." One in a thousand of the group's weight,
 * so the share does not depend on the scale the zone's author chose (60/30/0 and 6000/3000/0 agree).
 */
export const ZERO_WEIGHT_SHARE = 1e-3;

/** Whether the answer is RFC 2782's "decidedly not available": exactly one record, whose target is `.`. */
export function isDecidedlyUnavailable(records: readonly SrvRecord[]): boolean {
  return records.length === 1 && isRootTarget(records[0]!.name);
}

/** Whether an SRV target is the root, `.` (c-ares reports it as an empty name). */
export function isRootTarget(name: string): boolean {
  return name === '' || name === '.';
}

/**
 * The weight each record of one priority group stands for, all > 0:
 * - a record with weight w > 0 keeps w;
 * - a weight-0 record gets {@link ZERO_WEIGHT_SHARE} × the group's total weight;
 * - when every weight is 0, all are equal (1 each), as RFC 2782 intends for "no load balancing".
 */
export function effectiveWeights(group: readonly SrvRecord[]): number[] {
  let total = 0;
  for (const r of group) total += r.weight;
  if (total <= 0) return group.map(() => 1);
  const zero = total * ZERO_WEIGHT_SHARE;
  return group.map((r) => (r.weight > 0 ? r.weight : zero));
}

/**
 * Orders SRV records as a client should try them: lowest priority first, and within a priority by
 * weighted random order (exponential keys, see the file comment). Draws `random` once per record.
 * The input is not changed.
 *
 * @example orderSrv(records, seededRng(42))
 */
export function orderSrv(records: readonly SrvRecord[], random: Rng = Math.random): SrvRecord[] {
  const out: SrvRecord[] = [];
  for (const group of priorityGroups(records)) {
    const weights = effectiveWeights(group);
    const keyed = group.map((record, i) => ({ record, key: -Math.log(1 - random()) / weights[i]! }));
    keyed.sort((a, b) => a.key - b.key);
    for (const k of keyed) out.push(k.record);
  }
  return out;
}

/**
 * Splits records into groups of equal priority, lowest priority first, each group in input order.
 * (On the output of {@link orderSrv}, each group keeps its weighted order.)
 */
export function priorityGroups(records: readonly SrvRecord[]): SrvRecord[][] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const group = byPriority.get(r.priority);
    if (group) group.push(r);
    else byPriority.set(r.priority, [r]);
  }
  return [...byPriority.keys()].sort((a, b) => a - b).map((p) => byPriority.get(p)!);
}
