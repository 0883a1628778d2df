import { describe, expect, it } from 'vitest';
import { toEndpoint, type Endpoint, type EndpointInput } from '../../src/endpoint/endpoint.js';
import { EndpointSet } from '../../src/endpoint/endpoint-set.js';

const OPTIONS = { decayMs: 10_000, defaultRttMs: 30 };

function list(...inputs: EndpointInput[]): Endpoint[] {
  return inputs.map((input, i) => toEndpoint(input, `list[${i}]`));
}

const ids = (states: readonly { id: string }[]): string[] => states.map((s) => s.id);

describe('EndpointSet', () => {
  it('creates state for every endpoint of the first list, in discovery order', () => {
    const set = new EndpointSet(OPTIONS);
    const change = set.apply(list('10.0.0.2:80', '10.0.0.1:80'), 0);
    expect(ids(set.states)).toEqual(['10.0.0.2:80', '10.0.0.1:80']);
    expect(ids(change.added)).toEqual(['10.0.0.2:80', '10.0.0.1:80']);
    expect(change.removed).toEqual([]);
    expect(change.updated).toEqual([]);
    expect(set.size).toBe(2);
    expect(set.get('10.0.0.1:80')).toBe(set.states[1]);
  });

  it('keeps the same state object, with its in-flight count and latency, for endpoints that stay', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const kept = set.get('10.0.0.1:80')!;
    kept.begin();
    kept.begin();
    kept.end(200, true, 1_000); // one finished, slowly
    const ewma = kept.latency.get(1_000);
    expect(ewma).toBeGreaterThan(OPTIONS.defaultRttMs);

    const change = set.apply(list('10.0.0.3:80', '10.0.0.1:80'), 1_000);
    expect(set.get('10.0.0.1:80')).toBe(kept);
    expect(set.states).toContain(kept);
    expect(kept.inflight).toBe(1);
    expect(kept.requests).toBe(2);
    expect(kept.successes).toBe(1);
    expect(kept.latency.get(1_000)).toBe(ewma);
    expect(kept.removed).toBe(false);
    expect(change.added.map((s) => s.id)).toEqual(['10.0.0.3:80']);
    expect(change.removed.map((s) => s.id)).toEqual(['10.0.0.2:80']);
  });

  it('adds new endpoints with fresh state', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80'), 0);
    const change = set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 5_000);
    const added = change.added[0]!;
    expect(added.id).toBe('10.0.0.2:80');
    expect(added.inflight).toBe(0);
    expect(added.requests).toBe(0);
    expect(added.latency.get(5_000)).toBe(OPTIONS.defaultRttMs);
    expect(set.states[1]).toBe(added);
  });

  it('marks removed endpoints removed = true and drops them', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const leaving = set.get('10.0.0.2:80')!;
    leaving.begin(); // an attempt in flight on it
    const change = set.apply(list('10.0.0.1:80'), 0);
    expect(change.removed).toEqual([leaving]);
    expect(leaving.removed).toBe(true);
    expect(set.get('10.0.0.2:80')).toBeUndefined();
    expect(ids(set.states)).toEqual(['10.0.0.1:80']);
    // The attempt in flight still finishes and records on the retired state.
    leaving.end(10, true, 10);
    expect(leaving.inflight).toBe(0);
  });

  it('an endpoint that comes back after removal starts from fresh state', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const old = set.get('10.0.0.2:80')!;
    old.begin();
    old.end(5_000, false, 0);
    set.apply(list('10.0.0.1:80'), 0);
    const change = set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const back = set.get('10.0.0.2:80')!;
    expect(back).not.toBe(old);
    expect(change.added).toEqual([back]);
    expect(back.removed).toBe(false);
    expect(back.latency.get(0)).toBe(OPTIONS.defaultRttMs);
  });

  it('collapses duplicate ids in one list (the first wins)', () => {
    const set = new EndpointSet(OPTIONS);
    const change = set.apply(
      list('10.0.0.1:80', '10.0.0.2:80', { host: '10.0.0.1', port: 80, weight: 5 }, '10.0.0.2:80'),
      0,
    );
    expect(ids(set.states)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(change.added).toHaveLength(2);
    expect(set.get('10.0.0.1:80')!.weight).toBe(1);
    expect(set.size).toBe(2);
  });

  it('weight changes update `weight` and keep the state; the change lists it as updated', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const state = set.get('10.0.0.1:80')!;
    state.begin();
    const change = set.apply(list({ host: '10.0.0.1', port: 80, weight: 4 }, '10.0.0.2:80'), 0);
    expect(set.get('10.0.0.1:80')).toBe(state);
    expect(state.weight).toBe(4);
    expect(state.endpoint.weight).toBe(4);
    expect(state.inflight).toBe(1);
    expect(change).toEqual({ added: [], removed: [], updated: [state] });
  });

  it('an unchanged description is not an update, even as a new object', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list({ host: '10.0.0.1', port: 80, zone: 'a', tags: ['x'], meta: { k: 'v' } }), 0);
    const change = set.apply(list({ host: '10.0.0.1', port: 80, zone: 'a', tags: ['x'], meta: { k: 'v' } }), 0);
    expect(change.updated).toEqual([]);
    const zoneChange = set.apply(list({ host: '10.0.0.1', port: 80, zone: 'b', tags: ['x'], meta: { k: 'v' } }), 0);
    expect(zoneChange.updated.map((s) => s.endpoint.zone)).toEqual(['b']);
    const metaChange = set.apply(list({ host: '10.0.0.1', port: 80, zone: 'b', tags: ['x'], meta: { k: 'w' } }), 0);
    expect(metaChange.updated).toHaveLength(1);
  });

  it('an id reused for another address is a new endpoint: the old state is retired', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list({ id: 'users-1', host: '10.0.0.1', port: 80 }), 0);
    const old = set.get('users-1')!;
    old.begin();
    const change = set.apply(list({ id: 'users-1', host: '10.0.0.9', port: 80 }), 0);
    const fresh = set.get('users-1')!;
    expect(fresh).not.toBe(old);
    expect(fresh.endpoint.host).toBe('10.0.0.9');
    expect(fresh.inflight).toBe(0);
    expect(old.removed).toBe(true);
    expect(change.removed).toEqual([old]);
    expect(change.added).toEqual([fresh]);
    expect(set.states).toEqual([fresh]);
  });

  it('replaces `states` with a new array on every apply, so a picker holding the old one is not disturbed', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const before = set.states;
    set.apply(list('10.0.0.1:80'), 0);
    expect(before.map((s) => s.id)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(set.states).not.toBe(before);
  });

  it('an empty list retires everything', () => {
    const set = new EndpointSet(OPTIONS);
    set.apply(list('10.0.0.1:80', '10.0.0.2:80'), 0);
    const change = set.apply([], 0);
    expect(change.removed).toHaveLength(2);
    expect(set.states).toEqual([]);
    expect(set.size).toBe(0);
  });
});
