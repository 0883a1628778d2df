/** Why `name` cannot be a mesh name (`createMesh({ name })`, the `mesh` label of its metrics), or undefined when it can. */
export function meshNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0 || name.length > 64) return 'must be 1 to 64 characters long';
  // Control characters (line feeds included) and lone surrogates would make an unreadable label value.
  if (/[\p{Cc}\p{Cs}]/u.test(name)) return 'must hold printable characters only (no control characters)';
  return undefined;
}
