// The demo's SVG writer and its recorder, alone: the chart is well-formed XML with an <svg> root, names every
// endpoint in its legend, labels its axes, escapes names, and places values where the scales say; the recorder's
// quantiles, shares and per-second series come from the samples it was given (an injected clock, no sleeps).
import { describe, expect, it } from 'vitest';
import { chartSvg, escapeXml, type DemoChart } from '../../examples/demo-chart.js';
import { DemoRecorder, quantile } from '../../examples/demo-stats.js';
import { allElements, allText, parseXml } from './demo-xml.js';

const chart: DemoChart = {
  title: 'two endpoints',
  seconds: 3,
  endpoints: [
    { name: 'fast-1', share: [0.9, 0.8, null], p50: [2, 3, null], p99: [5, 6, null], note: '85.0% of attempts' },
    { name: 'slow & <odd> "name"', share: [0.1, 0.2, null], p50: [85, 90, null], p99: [120, 130, null] },
  ],
  calls: { p50: [3, 4, null], p99: [90, 100, null] },
  markers: [{ atS: 1.5, label: 'flaky died' }],
};

describe('chartSvg', () => {
  it('writes well-formed SVG with every endpoint name, the axis labels, the legend and the markers', () => {
    const svg = chartSvg(chart);
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')).toBe(true);
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(root.attributes['xmlns']).toBe('http://www.w3.org/2000/svg');
    const texts = allText(root);
    expect(texts).toContain('fast-1');
    expect(texts).toContain('slow & <odd> "name"'); // decoded back from its escapes: it was text, not markup
    expect(texts).toContain('85.0% of attempts');
    expect(texts).toContain('share of attempts, %');
    expect(texts).toContain('latency, ms (log scale)');
    expect(texts.filter((t) => t === 'time since start, s')).toHaveLength(2);
    expect(texts).toEqual(expect.arrayContaining(['p50', 'p99', 'calls, as the caller saw them', 'flaky died', '0%', '100%', '0', '3']));
    expect(allElements(root).filter((e) => e.name === 'text' && e.attributes['class'] === 'legend-name')).toHaveLength(2);
  });

  it('draws a line per endpoint and series, broken where a second had no attempt, on the scales it labels', () => {
    const root = parseXml(chartSvg(chart));
    const paths = allElements(root).filter((e) => e.name === 'path');
    // 2 endpoints × (share, p50, p99) + the calls' p50 and p99.
    expect(paths).toHaveLength(8);
    for (const p of paths) expect(p.attributes['d']!.match(/[ML]/g)).toEqual(['M', 'L']); // 2 points: the null second is skipped
    // A share of 0.9 sits 90 % of the way up its panel: the 0 % and 100 % grid lines bound it.
    const gridY = (label: string): number => {
      const t = allElements(root).find((e) => e.name === 'text' && e.text === label)!;
      return Number(t.attributes['y']) - 4;
    };
    const firstShare = paths[0]!.attributes['d']!.split(/[ML ]+/).filter(Boolean).map(Number);
    const [top, bottom] = [gridY('100%'), gridY('0%')];
    expect(firstShare[1]!).toBeCloseTo(bottom - 0.9 * (bottom - top), 0);
    // The latency axis is logarithmic and spans the values: 1 ms to 200 ms here.
    expect(allText(root)).toEqual(expect.arrayContaining(['1 ms', '10 ms', '100 ms', '200 ms']));
    expect(allText(root)).not.toContain('500 ms');
  });

  it('refuses series of the wrong length, naming the field', () => {
    expect(() => chartSvg({ ...chart, seconds: 4 })).toThrow(/chart series must have chart.seconds \(4\)/);
    expect(() => chartSvg({ ...chart, seconds: 0 })).toThrow(/chart.seconds/);
  });

  it('escapes the five XML specials', () => {
    expect(escapeXml(`<a href="x">&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
  });

  it('keeps any endpoint name well-formed: characters XML 1.0 forbids (C0 controls, U+FFFF, lone surrogates) become U+FFFD', () => {
    // XML 1.0 Char: tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF; anything else is a fatal error, even as &#1;.
    const forbidden = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
    expect(escapeXml('a\u0000b\u0001c\u001bd\uFFFEe\uD800f')).toBe('a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFDf');
    expect(escapeXml('tab\tok 😀 é')).toBe('tab\tok 😀 é');
    const svg = chartSvg({ ...chart, title: 'run \u0007', endpoints: [{ ...chart.endpoints[0]!, name: 'bell\u0007\u0000' }] });
    expect(svg).not.toMatch(forbidden);
    expect(allText(parseXml(svg))).toContain('bell\uFFFD\uFFFD');
  });
});

describe('the test XML parser fails on malformed XML', () => {
  it.each([
    ['<svg><text>a</svg>', /mismatched/],
    ['<svg a="1" a="2"/>', /repeated/],
    ['<svg><text>a & b</text></svg>', /entity/],
    ['<svg a=1/>', /quoted/],
    ['<svg/><svg/>', /after the root/],
    ['<svg>', /unclosed/],
  ])('%s', (xml, error) => {
    expect(() => parseXml(xml)).toThrow(error);
  });
});

describe('DemoRecorder', () => {
  it('gives nearest-rank quantiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNull();
  });

  it('computes p50/p99 per endpoint, shares over a window and per-second series from what it was told', () => {
    let now = 0;
    const r = new DemoRecorder(['a', 'b'], () => now);
    // Second 0: a gets 3 attempts (2 ms each), b 1 (80 ms). Second 1: only a, 4 ms.
    for (const [t, name, ms] of [[0.1, 'a', 2], [0.2, 'a', 2], [0.3, 'a', 2], [0.4, 'b', 80], [1.5, 'a', 4]] as const) {
      now = t;
      r.attempt(name);
      r.attemptEnded(name, ms);
      r.call(ms + 1);
    }
    r.attempt('unknown'); // ignored, not thrown
    expect(r.latency('a')).toEqual({ p50: 2, p99: 4 });
    expect(r.latency('b')).toEqual({ p50: 80, p99: 80 });
    expect(r.callLatency()).toEqual({ p50: 3, p99: 81 });
    expect(r.share('b', 0, 1)).toEqual({ share: 0.25, attempts: 4 });
    expect(r.share('b', 1, 2)).toEqual({ share: 0, attempts: 1 });
    expect(r.share('a', 5, 6)).toEqual({ share: null, attempts: 0 });
    const c = r.chart('t', 2.5, [{ atS: 1, label: 'm' }]);
    expect(c.seconds).toBe(3);
    expect(c.endpoints.map((e) => e.name)).toEqual(['a', 'b']);
    expect(c.endpoints[0]!.share).toEqual([0.75, 1, null]);
    expect(c.endpoints[1]!.p50).toEqual([80, null, null]);
    expect(c.calls!.p99).toEqual([81, 5, null]);
    expect(parseXml(chartSvg(c)).name).toBe('svg');
  });
});
