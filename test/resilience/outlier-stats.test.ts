import { describe, expect, it } from 'vitest';
import { DEFAULT_FAILURE_PERCENT, DEFAULT_SUCCESS_RATE } from '../../src/defaults.js';
import {
  failurePercentOutliers,
  successRate,
  successRateOutliers,
  successRateThreshold,
  type IntervalSample,
} from '../../src/resilience/outlier-stats.js';

/** Samples of `attempts` attempts each, with these success rates in percent. */
const samples = (rates: readonly number[], attempts = 100): IntervalSample[] =>
  rates.map((r) => ({ attempts, failures: Math.round((attempts * (100 - r)) / 100) }));

describe('successRateThreshold (Envoy successRateEjectionThreshold)', () => {
  it("reproduces Envoy's worked example: {50, 100, 100, 100, 100} gives mean 90, stdev 20, threshold 52", () => {
    const t = successRateThreshold([50, 100, 100, 100, 100], 1.9);
    expect(t.mean).toBe(90);
    expect(t.stdev).toBe(20); // the population stdev (÷ n), as Envoy computes it
    expect(t.threshold).toBeCloseTo(52, 12);
  });

  it('is the mean itself when every rate is equal (nobody is below it)', () => {
    expect(successRateThreshold([99, 99, 99, 99, 99], 1.9)).toEqual({ mean: 99, stdev: 0, threshold: 99 });
  });

  it('reads a rate in percent', () => {
    expect(successRate({ attempts: 200, failures: 60 })).toBe(70);
  });
});

describe('successRateOutliers', () => {
  const policy = DEFAULT_SUCCESS_RATE; // minHosts 5, requestVolume 100, stdevFactor 1.9

  it('finds a 70 % endpoint among nine at 100 % (threshold 97 − 1.9 × 9 = 79.9)', () => {
    expect(successRateOutliers(samples([100, 100, 100, 100, 70, 100, 100, 100, 100, 100]), policy)).toEqual([4]);
  });

  it('needs minHosts endpoints with requestVolume attempts each', () => {
    const four = samples([100, 100, 100, 20]);
    expect(successRateOutliers(four, policy)).toEqual([]);
    // Five endpoints, but one under the volume: only four qualify.
    const low = [...samples([100, 100, 100, 20]), { attempts: 99, failures: 0 }];
    expect(successRateOutliers(low, policy)).toEqual([]);
    const five = [...samples([100, 100, 100, 20]), { attempts: 100, failures: 0 }];
    expect(successRateOutliers(five, policy)).toEqual([3]);
  });

  it('leaves out endpoints under the volume from the statistics, not only from the verdict', () => {
    // The 0 % endpoint has 10 attempts: it neither counts in the mean nor is ejected.
    const s = [...samples([100, 100, 100, 100, 100, 60]), { attempts: 10, failures: 10 }];
    expect(successRateOutliers(s, policy)).toEqual([5]);
  });

  it('lists outliers worst first', () => {
    const s = samples([100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 60, 40, 100, 100, 100, 100, 100, 100]);
    expect(successRateOutliers(s, policy)).toEqual([13, 12]);
  });

  it('gives an endpoint with no attempt no rate, even at requestVolume 0 (0 ÷ 0 would make the mean NaN and spare everyone)', () => {
    const s = [...samples([100, 100, 100, 100, 100, 100, 100, 100, 40]), { attempts: 0, failures: 0 }];
    expect(successRateOutliers(s, { ...policy, requestVolume: 0 })).toEqual([8]);
    expect(failurePercentOutliers(s, { ...DEFAULT_FAILURE_PERCENT, requestVolume: 0, minHosts: 10 })).toEqual([]); // 9 with a rate
    expect(failurePercentOutliers(s, { ...DEFAULT_FAILURE_PERCENT, requestVolume: 0, threshold: 50 })).toEqual([8]);
  });

  it('is strict: a rate at the threshold stays', () => {
    // mean 90, stdev 20, factor 2: threshold exactly 50.
    expect(successRateOutliers(samples([50, 100, 100, 100, 100]), { ...policy, stdevFactor: 2 })).toEqual([]);
    expect(successRateOutliers(samples([50, 100, 100, 100, 100]), { ...policy, stdevFactor: 1.9 })).toEqual([0]);
  });
});

describe('failurePercentOutliers', () => {
  const policy = DEFAULT_FAILURE_PERCENT; // threshold 85, minHosts 5, requestVolume 50

  it('ejects at or above the threshold, never below', () => {
    const s: IntervalSample[] = [
      { attempts: 100, failures: 85 },
      { attempts: 100, failures: 84 },
      { attempts: 50, failures: 50 },
      { attempts: 100, failures: 0 },
      { attempts: 100, failures: 0 },
    ];
    expect(failurePercentOutliers(s, policy)).toEqual([2, 0]);
  });

  it('needs minHosts endpoints with requestVolume attempts', () => {
    const s: IntervalSample[] = [
      { attempts: 100, failures: 100 },
      { attempts: 100, failures: 0 },
      { attempts: 100, failures: 0 },
      { attempts: 100, failures: 0 },
      { attempts: 49, failures: 0 },
    ];
    expect(failurePercentOutliers(s, policy)).toEqual([]);
    expect(failurePercentOutliers(s, { ...policy, minHosts: 4 })).toEqual([0]);
    // Under the volume, even 100 % failures are not judged.
    expect(failurePercentOutliers([{ attempts: 49, failures: 49 }], { ...policy, minHosts: 1 })).toEqual([]);
  });

  it('judges every endpoint by its own figure, whatever the others do (unlike success rate)', () => {
    const all = samples([40, 40, 40, 40, 40], 100);
    expect(failurePercentOutliers(all, { ...policy, threshold: 60 })).toEqual([0, 1, 2, 3, 4]);
    expect(successRateOutliers(all, DEFAULT_SUCCESS_RATE)).toEqual([]);
  });
});
