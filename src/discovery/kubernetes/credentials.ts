/**
 * The bearer token and the CA bundle, read from files and read again as they age. Bound service-account tokens
 * (projected volumes, the default since Kubernetes 1.21) expire and the kubelet rewrites the file; client-go
 * re-reads it every minute (transport/token_source.go, NewCachedFileTokenSource) and, since a 401 may mean it
 * just rotated, this module also drops its copy at once on a 401. No message here ever holds a token.
 */
import { readFile } from 'node:fs/promises';
import type { Clock } from '../../util/clock.js';

/** A file's trimmed text, cached for `maxAgeMs`; `invalidate()` makes the next `get()` read it again. */
export class CachedFile {
  private value: string | undefined;
  private readAt = -Infinity;
  /** One read in flight, shared by every caller that asks meanwhile. */
  private reading: Promise<string | undefined> | undefined;

  constructor(
    readonly path: string,
    /** When false, a missing file (ENOENT) reads as "none" (the in-cluster default outside a pod). */
    private readonly required: boolean,
    private readonly maxAgeMs: number,
    private readonly clock: Clock,
    /** Checks (and may reshape) what was read; throws an Error whose message must not quote the content. */
    private readonly check: (content: string) => string,
  ) {}

  /** The content; rejects with an Error naming the file (never its content) when it cannot be read or is invalid. */
  get(): Promise<string | undefined> {
    if (this.clock.now() - this.readAt < this.maxAgeMs) return Promise.resolve(this.value);
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  invalidate(): void {
    this.readAt = -Infinity;
  }

  /** Every value this file held lately (the current one and the one before), for redaction. */
  readonly seen: string[] = [];

  private async read(): Promise<string | undefined> {
    let content: string;
    try {
      content = (await readFile(this.path, 'utf8')).trim();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (!this.required && code === 'ENOENT') {
        this.remember(undefined);
        return undefined;
      }
      // The last good value would authenticate only until it expires; failing says why at once.
      throw new Error(`cannot read ${this.path} (${code ?? 'unreadable'})`);
    }
    const value = this.check(content);
    this.remember(value);
    return value;
  }

  private remember(value: string | undefined): void {
    this.value = value;
    this.readAt = this.clock.now();
    if (value !== undefined && !this.seen.includes(value)) {
      this.seen.unshift(value);
      this.seen.length = Math.min(this.seen.length, 2);
    }
  }
}

/** A token must fit in a header: visible ASCII. The message says so without quoting it. */
export function checkToken(path: string): (content: string) => string {
  return (content) => {
    if (content === '') throw new Error(`the token file ${path} is empty`);
    if (!/^[\x21-\x7e]+$/.test(content)) throw new Error(`the token file ${path} holds characters an HTTP header cannot carry`);
    return content;
  };
}

export function checkCa(path: string): (content: string) => string {
  return (content) => {
    if (!content.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`the CA file ${path} holds no PEM certificate`);
    return content;
  };
}

/** Where the bearer token comes from: a fixed string, a file, or nothing. */
export interface TokenSource {
  get(): Promise<string | undefined>;
  /** Forgets the cached token after a 401; true when reading again may give another one (a file). */
  invalidate(): boolean;
  /** The tokens to redact from any text shown. */
  secrets(): readonly string[];
}

export function tokenSource(token: string | undefined, file: CachedFile | undefined): TokenSource {
  if (file === undefined) {
    return { get: () => Promise.resolve(token), invalidate: () => false, secrets: () => (token === undefined ? [] : [token]) };
  }
  return {
    get: () => file.get(),
    invalidate: () => (file.invalidate(), true),
    secrets: () => file.seen,
  };
}

/** `text` with every secret (raw and URL-encoded) replaced. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === '') continue;
    out = out.split(secret).join('[redacted]');
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join('[redacted]');
  }
  return out;
}
