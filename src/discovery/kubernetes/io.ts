/** Request plumbing for http.ts: a request's own abort signal with a deadline, and a bounded body read. */
import type http from 'node:http';

/**
 * A request's own signal: aborted by the caller's `signal`, or by a timer of `timeoutMs` until `clearTimer()`.
 * `dispose()` clears the timer and unhooks the caller's signal, so nothing outlives the request.
 */
export function linked(signal: AbortSignal, timeoutMs: number): { signal: AbortSignal; timedOut(): boolean; clearTimer(): void; dispose(): void } {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = (): void => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  const clearTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    clearTimer,
    dispose: () => {
      clearTimer();
      signal.removeEventListener('abort', onAbort);
    },
  };
}

/** The body, or undefined past `limit` bytes (then the connection is dropped); `partial` returns what fit instead. */
export function readAll(res: http.IncomingMessage, limit: number, signal: AbortSignal, partial = false): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onAbort = (): void => {
      res.destroy();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (value: Buffer | undefined): void => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    res.on('data', (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        res.destroy();
        if (partial) chunks.push(chunk.subarray(0, limit - size));
        return done(partial ? Buffer.concat(chunks) : undefined);
      }
      size += chunk.length;
      chunks.push(chunk);
    });
    res.on('end', () => done(Buffer.concat(chunks)));
    res.on('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(error);
    });
  });
}

/**
 * Splits a byte stream into '\n'-ended lines of at most `maxLineBytes` each (the '\n' not counted). A line is
 * measured before it is joined, whether it ends in the chunk that started it or many chunks later, so no line
 * over the limit is ever held whole: `push` returns the complete lines before it and `tooLong: true`, and the
 * splitter must not be fed again.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** The lines this chunk completes; `tooLong` when a line (complete or not) passed the limit. */
  push(chunk: Buffer): { lines: string[]; tooLong: boolean } {
    const lines: string[] = [];
    let start = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, start)) {
      if (this.pendingBytes + (i - start) > this.maxLineBytes) return { lines, tooLong: true };
      this.pending.push(chunk.subarray(start, i));
      lines.push(Buffer.concat(this.pending).toString('utf8'));
      this.pending = [];
      this.pendingBytes = 0;
      start = i + 1;
    }
    if (start < chunk.length) {
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.maxLineBytes) return { lines, tooLong: true };
      this.pending.push(chunk.subarray(start));
    }
    return { lines, tooLong: false };
  }

  /** The unfinished last line, if any (the stream ended without a final '\n'). */
  rest(): string | undefined {
    if (this.pendingBytes === 0) return undefined;
    const line = Buffer.concat(this.pending).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    return line;
  }
}
