// Load biasing, unit level: the penalty enters peak-EWMA as a peak and fades with its decay; which responses
// charge what (a 429: 5 s; a failing status with Retry-After: its value up to 300 s; a 2xx: nothing, no header
// read). Injected clock, no sleeps.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toEndpoint } from '../../src/index.js';
import { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { fetchTransport } from '../../src/transport/fetch.js';
import { LOAD_PENALTY_MAX_MS, LOAD_PENALTY_MS, loadPenaltyMs } from '../../src/transport/http.js';
import { PeakEwma } from '../../src/util/ewma.js';

const TAU = 10_000;

function state(now = 0): EndpointState {
  return new EndpointState(toEndpoint('127.0.0.1:8080', 'test'), { decayMs: TAU, defaultRttMs: 30 }, now);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('PeakEwma.peak', () => {
  it('sets the cost exactly when above the decayed cost, and never lowers it', () => {
    const e = new PeakEwma(TAU, 30, 0);
    e.observe(80, 0);
    e.peak(5_000, 100);
    expect(e.get(100)).toBe(5_000);
    e.peak(1_000, 200); // below: ignored
    expect(e.get(200)).toBeCloseTo(5_000 * Math.exp(-100 / TAU), 6);
  });

  it('fades with the EWMA decay: 5 s falls to an 80 ms peer within about 41 s (τ ln(5000/80))', () => {
    const e = new PeakEwma(TAU, 30, 0);
    e.peak(5_000, 0);
    expect(e.get(10_000)).toBeCloseTo(5_000 / Math.E, 6);
    const crossing = TAU * Math.log(5_000 / 80);
    expect(e.get(crossing - 100)).toBeGreaterThan(80);
    expect(e.get(crossing + 100)).toBeLessThan(80);
  });
});

describe('EndpointState.shed', () => {
  it('charges the cost balancers compare, on top of a measured latency', () => {
    const s = state();
    s.begin();
    s.end(2, true, 0); // a fast answer: cheap
    expect(s.cost(0)).toBeLessThanOrEqual(30);
    s.shed(LOAD_PENALTY_MS, 1);
    expect(s.cost(1)).toBe(LOAD_PENALTY_MS);
  });

  it('a failure after the charge does not lower it, and revive forgets it', () => {
    const s = state();
    s.shed(5_000, 0);
    s.begin();
    s.end(1, false, 10);
    expect(s.latency.get(10)).toBeGreaterThanOrEqual(5_000 * Math.exp(-10 / TAU));
    s.revive(40, 20);
    expect(s.cost(20)).toBe(40);
  });
});

describe('which responses charge what', () => {
  it('a 429 without Retry-After: 5 s; with one: its value; a date: what is left of it', () => {
    expect(loadPenaltyMs(429, null)).toBe(5_000);
    expect(loadPenaltyMs(429, '2')).toBe(2_000);
    expect(loadPenaltyMs(429, '0')).toBe(0);
    vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
    expect(loadPenaltyMs(429, 'Thu, 01 Jan 2026 00:00:07 GMT')).toBe(7_000);
  });

  it('a failing status with Retry-After: its value, capped at 300 s; without one, nothing', () => {
    expect(loadPenaltyMs(503, '30')).toBe(30_000);
    expect(loadPenaltyMs(503, '999999999999')).toBe(LOAD_PENALTY_MAX_MS);
    expect(loadPenaltyMs(400, '1')).toBe(1_000);
    expect(loadPenaltyMs(503, null)).toBeUndefined();
    expect(loadPenaltyMs(500, null)).toBeUndefined();
  });

  it('an unreadable Retry-After counts as absent (a 429 then charges the default)', () => {
    for (const junk of ['-1', 'soon', '1e3', '', ' ']) {
      expect(loadPenaltyMs(503, junk)).toBeUndefined();
      expect(loadPenaltyMs(429, junk)).toBe(5_000);
    }
  });

  it('fetch: a 2xx or 3xx charges nothing and reads no header', () => {
    const get = vi.fn(() => '5');
    for (const status of [200, 204, 302]) {
      expect(fetchTransport.loadPenaltyMs?.({ status, headers: { get } })).toBeUndefined();
    }
    expect(get).not.toHaveBeenCalled();
    expect(fetchTransport.loadPenaltyMs?.({ status: 503, headers: { get } })).toBe(5_000);
    expect(fetchTransport.loadPenaltyMs?.('not a response')).toBeUndefined();
  });
});
