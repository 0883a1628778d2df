import { watch as watchFs, type FSWatcher, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { ConfigSource, MeshConfigInput } from '../config/types.js';
import { jsonFault } from './json-fault.js';

/** How {@link fileConfig} follows its file. */
export interface FileConfigOptions {
  /**
   * How long the file must stay quiet after a change before it is read, so that a file written in several
   * chunks is read once, complete. A stream of changes delays a read by at most one second more. Default 50.
   * @example 200
   */
  debounceMs?: number | undefined;
  /**
   * How often the file is stat'ed, in case `fs.watch` misses a change (network and some container filesystems
   * send no events, and a change behind a symlink that points out of the directory sends none either). It is
   * read again only when its inode, size or mtime changed. Default 1000.
   * @example 5_000
   */
  pollMs?: number | undefined;
}

/** setTimeout's limit; a longer delay would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
/** The longest a stream of change events may postpone a read. */
const MAX_DEBOUNCE_WAIT_MS = 1_000;
const TOP_LEVEL_KEYS: readonly string[] = ['defaults', 'services', 'routes', 'subsets'];

/** `label` (`fileConfig(<path as given>)`) starts every message; `file` is absolute, in `dir`, named `base`. */
type Settings = Readonly<Record<'label' | 'file' | 'dir' | 'base', string> & Record<'debounceMs' | 'pollMs', number>>;

/**
 * A {@link ConfigSource} that reads a JSON file holding a {@link MeshConfigInput} (`defaults`, `services`,
 * `routes`, `subsets`) and pushes it again whenever it is rewritten: in place, by an atomic rename over it (what
 * editors and config-management tools do), or by a Kubernetes ConfigMap volume swapping its `..data` symlink.
 *
 * Each `watch` reads the file at once, then follows it with `fs.watch` on its directory (a watch on the file
 * itself would stay on the old inode after a rename) and a stat poll as a fallback; both are unref'd, so a
 * watch alone does not keep the process alive. A file that is missing, is not JSON, or is not an object with
 * only those four keys goes to `onError` and nothing is pushed: the mesh keeps the last good configuration.
 * The same text is never pushed twice in a row. The mesh validates the configuration's content itself.
 *
 * @param path The file; a relative path is resolved against the current directory now.
 * @throws TypeError naming the argument that is not valid.
 * @example
 * // A mesh calls watch itself; by hand:
 * const stop = fileConfig('/etc/proxyless/mesh.json').watch((config) => console.log(config), (e) => console.warn(e.message));
 */
export function fileConfig(path: string, options?: FileConfigOptions): ConfigSource {
  const settings = checkArguments(path, options);
  const followers = new Set<Follower>();
  let closed = false;
  return {
    name: `file:${path}`,
    watch(onUpdate, onError) {
      if (closed) throw new Error(`${settings.label}: watch() after close()`);
      for (const [name, f] of [['onUpdate', onUpdate], ['onError', onError]] as const) {
        if (typeof f !== 'function') throw new TypeError(`${settings.label}: watch(onUpdate, onError): ${name} must be a function`);
      }
      const follower = new Follower(settings, onUpdate, onError);
      followers.add(follower);
      follower.start();
      return () => {
        followers.delete(follower);
        follower.stop();
      };
    },
    close() {
      closed = true;
      for (const follower of followers) follower.stop();
      followers.clear();
    },
  };
}

function checkArguments(path: unknown, options: unknown): Settings {
  if (typeof path !== 'string' || path === '') throw new TypeError('fileConfig(path): path must be a non-empty string');
  // fs would reject it on every read; saying so once, here, is clearer
  if (path.includes('\0')) throw new TypeError('fileConfig(path): path must not contain NUL characters');
  const label = `fileConfig(${path})`;
  let debounceMs = 50;
  let pollMs = 1_000;
  if (options !== undefined) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new TypeError('fileConfig(path, options): options must be an object');
    }
    const o = options as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (key !== 'debounceMs' && key !== 'pollMs') {
        throw new TypeError(`fileConfig(path, options): unknown option ${JSON.stringify(key)} (expected debounceMs or pollMs)`);
      }
    }
    debounceMs = milliseconds(o.debounceMs, 'debounceMs', 0) ?? debounceMs;
    pollMs = milliseconds(o.pollMs, 'pollMs', 1) ?? pollMs;
  }
  const file = resolve(path);
  return { label, file, dir: dirname(file), base: basename(file), debounceMs, pollMs };
}

function milliseconds(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
    throw new TypeError(`fileConfig(path, options): options.${name} must be a number from ${min} to ${MAX_TIMER_MS}`);
  }
  return value;
}

/** What the poll compares. A read records it too, so the poll does not read again what a watch event just read. */
function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

function errorSignature(error: unknown): string {
  return `error:${(error as NodeJS.ErrnoException | undefined)?.code ?? String(error)}`;
}

/** Parses the text and checks the top level; throws with the path in the message. */
function parse(text: string, label: string): MeshConfigInput {
  let value: unknown;
  // A byte-order mark is what some Windows editors write first; JSON.parse rejects it.
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    value = JSON.parse(json);
  } catch (error) {
    // Not JSON.parse's message, nor the error as a cause: V8 quotes the text around the fault (`Unexpected
    // token 'M', "{"key": MIIEvQIBAD"... is not valid JSON`), and the file may hold a private key or a token.
    throw new SyntaxError(`${label}: ${jsonFault(json, error)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new TypeError(`${label}: the top level must be a JSON object, not ${what}`);
  }
  for (const key of Object.keys(value)) {
    if (!TOP_LEVEL_KEYS.includes(key)) {
      throw new TypeError(`${label}: unknown top-level key ${JSON.stringify(key)} (expected defaults, services, routes or subsets)`);
    }
  }
  return value as MeshConfigInput;
}

/** One `watch`: the directory watcher, the poll, and what was last read and pushed. */
class Follower {
  private stopped = false;
  private watcher: FSWatcher | undefined;
  /** The directory's inode when the watcher was opened: a replaced directory needs a new watcher. */
  private watchedDir: string | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private debounceSince = 0;
  private poll: NodeJS.Timeout | undefined;
  /** Reads run one at a time, in order; a change during a read asks for one more. */
  private reading = false;
  private dirty = false;
  private lastSignature: string | undefined;
  private lastPushed: string | undefined;
  /** The last failure reported, so that the watcher and the poll seeing the same bad file report it once. */
  private lastFailure: string | undefined;

  constructor(
    private readonly s: Settings,
    private readonly onUpdate: (config: MeshConfigInput) => void,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    // Watch before the first read, so that a change between the two is not missed.
    this.openWatcher(undefined);
    this.schedulePoll();
    this.dirty = true;
    void this.drain();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.closeWatcher();
    clearTimeout(this.debounce);
    clearTimeout(this.poll);
  }

  private openWatcher(dirSignature: string | undefined): void {
    try {
      // persistent: false is the watcher's unref
      const watcher = watchFs(this.s.dir, { persistent: false }, (_event, name) => {
        // `..data` (and `..data_tmp`, renamed onto it) is the ConfigMap's symlink swap: our file's own name,
        // a symlink through `..data`, sends no event then. No name at all (some platforms): read to be sure.
        if (name == null || name === this.s.base || name.startsWith('..data')) this.changed(false);
      });
      watcher.on('error', () => {
        // e.g. the directory was removed; the poll goes on and opens a new watcher once it is back
        if (this.watcher === watcher) this.closeWatcher();
      });
      this.watcher = watcher;
      this.watchedDir = dirSignature;
    } catch {
      // No directory (yet), or no inotify watches left: the poll still follows the file, and tries again.
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = this.watchedDir = undefined;
  }

  /** A trailing debounce, capped so that a file rewritten without pause is still read. */
  private changed(fromPoll: boolean): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.debounce === undefined) this.debounceSince = now;
    else if (fromPoll || now - this.debounceSince >= MAX_DEBOUNCE_WAIT_MS) return; // keep the pending read
    else clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.dirty = true;
      void this.drain();
    }, this.s.debounceMs);
    this.debounce.unref();
  }

  private schedulePoll(): void {
    // A chain of timeouts, not an interval: a slow stat (a hung network mount) never overlaps the next.
    this.poll = setTimeout(() => void this.tick(), this.s.pollMs);
    this.poll.unref();
  }

  private async tick(): Promise<void> {
    this.poll = undefined;
    const [file, dir] = await Promise.all([
      stat(this.s.file).then(signature, errorSignature),
      stat(this.s.dir).then((st) => `${st.dev}:${st.ino}`, errorSignature),
    ]);
    if (this.stopped) return;
    if (this.watcher !== undefined && this.watchedDir === undefined) this.watchedDir = dir; // opened by start()
    else if (this.watcher !== undefined && this.watchedDir !== dir) this.closeWatcher(); // it watches a dead inode
    if (this.watcher === undefined && !dir.startsWith('error:')) this.openWatcher(dir);
    if (file !== this.lastSignature) this.changed(true);
    this.schedulePoll();
  }

  private async drain(): Promise<void> {
    if (this.reading) return; // the running loop sees `dirty`
    this.reading = true;
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.readOnce();
      }
    } finally {
      this.reading = false;
    }
  }

  private async readOnce(): Promise<void> {
    let text: string;
    try {
      // One open for stat and read, so that the signature is that of the inode whose text was read.
      const handle = await open(this.s.file, 'r');
      try {
        this.lastSignature = signature(await handle.stat());
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      this.lastSignature = errorSignature(error);
      const message = `${this.s.label}: cannot read the file: ${(error as Error).message}`;
      return this.fail(this.lastSignature, new Error(message, { cause: error }));
    }
    if (this.stopped) return;
    if (text === this.lastPushed) {
      this.lastFailure = undefined; // back to what the mesh already has
      return;
    }
    let config: MeshConfigInput;
    try {
      config = parse(text, this.s.label);
    } catch (error) {
      return this.fail(`text:${text}`, error as Error);
    }
    this.lastPushed = text;
    this.lastFailure = undefined;
    this.deliver(() => this.onUpdate(config));
  }

  private fail(key: string, error: Error): void {
    if (this.stopped || key === this.lastFailure) return;
    this.lastFailure = key;
    this.deliver(() => this.onError(error));
  }

  /** Calls back; a callback that throws must not end the watch: its error goes to `onError` (and no further). */
  private deliver(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      if (this.stopped) return;
      try {
        this.onError(error instanceof Error ? error : new Error(String(error)));
      } catch {
        // nowhere left to report it
      }
    }
  }
}
