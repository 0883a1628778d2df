/**
 * The public declarations of the package, read with the TypeScript compiler API: every symbol exported by the
 * entry points (src/index.ts, src/undici.ts, src/testing.ts) and every declaration under src/ their types refer
 * to, recursively. The type tests extract `@example` blocks from them and check their optional properties.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import ts from 'typescript';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ENTRIES = { proxyless: 'src/index.ts', 'proxyless/undici': 'src/undici.ts', 'proxyless/testing': 'src/testing.ts' } as const;

/** The options a consumer with the strictest settings compiles with; `proxyless` resolves to the source. */
export function consumerOptions(): ts.CompilerOptions {
  return {
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    skipLibCheck: true,
    noEmit: true,
    isolatedModules: true,
    paths: Object.fromEntries(Object.entries(ENTRIES).map(([name, file]) => [name, [path.join(ROOT, file)]])),
  };
}

/** A program over the entry points and some virtual files (path → text) beside them. */
export function programWith(files: ReadonlyMap<string, string>, options = consumerOptions()): ts.Program {
  const host = ts.createCompilerHost(options, true);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => files.get(path.resolve(f)) ?? read(f);
  host.fileExists = (f) => files.has(path.resolve(f)) || exists(f);
  host.getSourceFile = (f, language, onError, create) => {
    const text = files.get(path.resolve(f));
    return text === undefined ? getSourceFile(f, language, onError, create) : ts.createSourceFile(f, text, language, true);
  };
  const roots = [...Object.values(ENTRIES).map((f) => path.join(ROOT, f)), ...files.keys()];
  return ts.createProgram({ rootNames: roots, options, host });
}

/** Every declaration of the public surface (see the file comment). */
export function publicDeclarations(program: ts.Program): Set<ts.Declaration> {
  const checker = program.getTypeChecker();
  const decls = new Set<ts.Declaration>();
  const seen = new Set<ts.Symbol>();
  const queue: ts.Declaration[] = [];
  const src = path.join(ROOT, 'src') + path.sep;
  const add = (symbol: ts.Symbol | undefined): void => {
    if (symbol === undefined) return;
    const s = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    if (seen.has(s)) return;
    seen.add(s);
    for (const d of s.declarations ?? []) {
      if (!path.resolve(d.getSourceFile().fileName).startsWith(src)) continue;
      decls.add(d);
      queue.push(d);
    }
  };
  for (const file of Object.values(ENTRIES)) {
    const sf = program.getSourceFile(path.join(ROOT, file));
    const module = sf && checker.getSymbolAtLocation(sf);
    if (module === undefined) throw new Error(`cannot read the exports of ${file}`);
    for (const s of checker.getExportsOfModule(module)) add(s);
  }
  while (queue.length > 0) {
    const visit = (n: ts.Node): void => {
      if (ts.isBlock(n)) return; // code, not types
      if (ts.isTypeReferenceNode(n)) add(checker.getSymbolAtLocation(n.typeName));
      if (ts.isExpressionWithTypeArguments(n)) add(checker.getSymbolAtLocation(n.expression));
      ts.forEachChild(n, visit);
    };
    visit(queue.pop()!);
  }
  return decls;
}

/** `file:line` of a node, relative to the repository. */
export function where(node: ts.Node): string {
  const sf = node.getSourceFile();
  const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
  return `${path.relative(ROOT, sf.fileName)}:${line + 1}`;
}

/** A readable name for a declaration: `Mesh.warmup`, `TimeoutPolicy.attemptMs`, `createMesh`. */
export function nameOf(node: ts.Node): string {
  const parts: string[] = [];
  for (let n: ts.Node | undefined = node; n !== undefined && !ts.isSourceFile(n); n = n.parent) {
    const name = (n as { name?: ts.Node }).name;
    if (name !== undefined && (ts.isIdentifier(name) || ts.isStringLiteral(name))) parts.unshift(name.text);
  }
  return parts.join('.') || '(anonymous)';
}
