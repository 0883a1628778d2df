/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for the tests: it throws on anything the
 * format does not allow (a sample before its family's TYPE, a family declared twice, a bad escape, a
 * duplicate series), so a test that parses `mesh.metrics()` also checks its syntax.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const lines = text.split('\n').slice(0, -1);
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      const name = sp < 0 ? rest : rest.slice(0, sp);
      if (!NAME.test(name)) throw new Error(`bad metric name in HELP, ${where}`);
      pendingHelp = { name, help: unescapeHelp(sp < 0 ? '' : rest.slice(sp + 1), where) };
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type, extra] = line.slice(7).split(' ');
      if (!name || !NAME.test(name) || extra !== undefined) throw new Error(`bad TYPE, ${where}`);
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type ?? '')) throw new Error(`bad type, ${where}`);
      if (families.has(name)) throw new Error(`family ${name} declared twice, ${where}`);
      if (pendingHelp?.name !== name) throw new Error(`TYPE without a HELP just before it, ${where}`);
      current = { name, type: type!, help: pendingHelp.help, samples: [] };
      families.set(name, current);
      pendingHelp = undefined;
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = parseSample(line, where);
    if (current === undefined || !belongs(sample.name, current)) {
      throw new Error(`sample outside its family (${current?.name ?? 'none'}), ${where}`);
    }
    const key = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (series.has(key)) throw new Error(`duplicate series ${key}`);
    series.add(key);
    current.samples.push(sample);
  }
  return families;
}

function belongs(name: string, family: Family): boolean {
  if (family.type === 'histogram') return ['_bucket', '_sum', '_count'].some((s) => name === family.name + s);
  return name === family.name;
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`bad sample name, ${where}`);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const eq = line.indexOf('=', i);
      if (eq < 0) throw new Error(`label without =, ${where}`);
      const key = line.slice(i, eq);
      if (!LABEL_NAME.test(key)) throw new Error(`bad label name ${key}, ${where}`);
      if (Object.hasOwn(labels, key)) throw new Error(`label ${key} twice, ${where}`);
      if (line[eq + 1] !== '"') throw new Error(`label value not quoted, ${where}`);
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\') {
          const next = line[++j];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else throw new Error(`bad escape \\${next}, ${where}`);
        } else {
          value += line[j];
        }
      }
      if (line[j] !== '"') throw new Error(`unterminated label value, ${where}`);
      labels[key] = value;
      i = j + 1;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`expected , or }, ${where}`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`expected a space before the value, ${where}`);
  const parts = line.slice(i + 1).split(' ');
  if (parts.length > 2) throw new Error(`trailing text, ${where}`);
  const raw = parts[0]!;
  const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
  if (raw === '' || (Number.isNaN(value) && raw !== 'NaN')) throw new Error(`bad value ${raw}, ${where}`);
  return { name, labels, value };
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.)/g, (_m, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`bad escape in HELP, ${where}`);
  });
}

/** The samples of `name` (a family name, or a histogram's `_bucket`/`_sum`/`_count`) whose labels include `match`. */
export function samples(families: Map<string, Family>, name: string, match: Record<string, string> = {}): Sample[] {
  const out: Sample[] = [];
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) out.push(s);
    }
  }
  return out;
}

/** The one value of `name` with these labels (throws unless exactly one series matches). */
export function value(families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  const found = samples(families, name, match);
  if (found.length !== 1) throw new Error(`${found.length} series of ${name} match ${JSON.stringify(match)}`);
  return found[0]!.value;
}
