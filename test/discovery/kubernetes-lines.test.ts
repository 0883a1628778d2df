// The watch stream's line splitter: lines bounded by maxBodyBytes wherever they end, a huge line refused before
// it is ever joined whole.
import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/discovery/kubernetes/io.js';

const b = (text: string): Buffer => Buffer.from(text, 'utf8');

describe('LineSplitter', () => {
  it('splits chunks into lines, joining a line cut across chunks, and keeps the unfinished tail for rest()', () => {
    const split = new LineSplitter(1_024);
    expect(split.push(b('{"a":1}\n{"b":'))).toEqual({ lines: ['{"a":1}'], tooLong: false });
    expect(split.push(b('2}\n\n{"c"'))).toEqual({ lines: ['{"b":2}', ''], tooLong: false });
    expect(split.push(b(':3}'))).toEqual({ lines: [], tooLong: false });
    expect(split.rest()).toBe('{"c":3}');
    expect(split.rest()).toBeUndefined();
  });

  it('refuses a complete line over the limit that arrives in one chunk, after handing over the lines before it', () => {
    const split = new LineSplitter(1_024);
    const huge = `{"type":"ADDED","object":{"pad":"${'x'.repeat(5_000)}"}}`;
    expect(split.push(b(`{"a":1}\n${huge}\n{"b":2}\n`))).toEqual({ lines: ['{"a":1}'], tooLong: true });
  });

  it('refuses a line over the limit that ends in a later chunk, counting what was pending', () => {
    const split = new LineSplitter(1_024);
    expect(split.push(b('x'.repeat(1_000)))).toEqual({ lines: [], tooLong: false });
    expect(split.push(b(`${'x'.repeat(30)}\n`))).toEqual({ lines: [], tooLong: true });
    const tail = new LineSplitter(1_024);
    expect(tail.push(b('x'.repeat(1_000)))).toEqual({ lines: [], tooLong: false });
    expect(tail.push(b('x'.repeat(25)))).toEqual({ lines: [], tooLong: true }); // never finished: still too long
  });

  it('takes a line of exactly the limit, and counts bytes, not characters', () => {
    expect(new LineSplitter(1_024).push(b(`${'x'.repeat(1_024)}\n`))).toEqual({ lines: ['x'.repeat(1_024)], tooLong: false });
    expect(new LineSplitter(1_024).push(b(`${'é'.repeat(513)}\n`)).tooLong).toBe(true); // 1026 bytes
  });
});
