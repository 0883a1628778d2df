/**
 * Why `name` cannot be a service name, or `undefined` when it can. Names become URL hosts, DNS names and
 * Consul path segments, so only DNS-style labels are allowed: letters, digits, `-`, `_` and single dots.
 * That rules out `/`, `..`, `%`, whitespace, CR/LF and anything else that could escape a path or a header.
 */
export function serviceNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'it must be a string';
  if (name.length === 0) return 'it is empty';
  if (name.length > 253) return 'it is longer than 253 characters';
  if (/[\s]/.test(name)) return 'it contains whitespace or a line break';
  if (name.includes('/')) return "it contains '/'";
  if (name.includes('%')) return "it contains '%'";
  if (name.includes('..')) return "it contains '..'";
  if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(name)) {
    return 'only letters, digits, "-", "_" and "." are allowed, starting and ending with a letter or digit';
  }
  return undefined;
}
