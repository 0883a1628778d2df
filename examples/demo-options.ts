/**
 * The demo's command line: its flags, their defaults, and `--help`. Options are checked once, here; a bad one
 * exits 2 with a message naming the flag.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export const DEFAULT_DURATION_S = 15;
export const DEFAULT_CHART = join(tmpdir(), 'proxyless-demo.svg');

export interface DemoOptions {
  readonly durationS: number;
  /** Keep serving the dashboard after the load ends, until SIGINT or SIGTERM. */
  readonly keep: boolean;
  /** Why `keep` is what it is, for the first lines of output. */
  readonly keepReason: string;
  readonly adminPort: number;
  /** Where the SVG chart is written. */
  readonly chart: string;
}

export const HELP = `npm run demo [-- <flags>]

Four local backends (fast-1, fast-2, slow, flaky) behind one service, 'api', called through a mesh with the
default policy. Prints the dashboard's URL, a line per second, a summary, and writes an SVG chart.

flags (default in brackets):
  --duration <seconds>  seconds of load, in (0, 50] [${DEFAULT_DURATION_S}]
  --keep                keep the mesh, the backends and the dashboard up after the load, until Ctrl-C
                        [on when run in a terminal without --duration; off otherwise, so tests and CI exit]
  --admin-port <port>   the dashboard's port on 127.0.0.1; 0 picks a free one [0]
  --chart <path>        where to write the SVG chart [${DEFAULT_CHART}]
  --help                print this and exit
`;

/** Parses `argv` (without node and the script); `interactive` is whether stdout is a terminal. */
export function demoOptions(argv: readonly string[], interactive: boolean): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'admin-port': { type: 'string', default: '0' },
      chart: { type: 'string', default: DEFAULT_CHART },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const durationS = values.duration === undefined ? DEFAULT_DURATION_S : Number(values.duration);
  if (!(durationS > 0 && durationS <= 50)) throw new TypeError(`--duration must be seconds in (0, 50], got ${values.duration}`);
  const adminPort = Number(values['admin-port']);
  if (!(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65535)) {
    throw new TypeError(`--admin-port must be a port number (0 for any free one), got ${values['admin-port']}`);
  }
  if (values.chart === '') throw new TypeError('--chart must be a file path');
  // An interactive run keeps the dashboard up; --duration says "a bounded run" (tests, CI), which exits.
  const keep = values.keep || (interactive && values.duration === undefined);
  const keepReason = values.keep ? '--keep' : keep ? 'run in a terminal without --duration' : 'add --keep to keep it';
  return { durationS, keep, keepReason, adminPort, chart: values.chart };
}
