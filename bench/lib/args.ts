/** `--name value` and `--name=value` flags of a bench, as numbers; anything unknown is an error. */
export function numberFlags<T extends Record<string, number>>(defaults: T, argv = process.argv.slice(2)): T {
  const out: Record<string, number> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') continue;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m?.[1]?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (m === null || key === undefined || !(key in defaults)) {
      throw new Error(`unknown argument ${arg}; flags: ${Object.keys(defaults).map((k) => `--${k}`).join(', ')}`);
    }
    const raw = m[2] ?? argv[++i];
    const value = Number(raw);
    if (raw === undefined || !Number.isFinite(value) || value < 0) throw new Error(`--${m[1]} needs a number >= 0, got ${raw}`);
    out[key] = value;
  }
  return out as T;
}
