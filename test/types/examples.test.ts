/**
 * The `@example` blocks of the public types compile (issue 14, "Rough edges": a type test). Each example of a
 * declaration reachable from the entry points is put in a file of its own, after a prelude that imports every
 * export of `proxyless`, `proxyless/undici` and `proxyless/testing` and declares the few free names the
 * examples use (`mesh`, `registry`, `log`, ...), and the lot is compiled as a consumer with the strictest
 * settings would (`strict`, `exactOptionalPropertyTypes`, `noUncheckedIndexedAccess`) compile it. An example
 * that is a value (`{ attemptMs: 2_000 }`, `1_000`) on a type or a property is checked against that type:
 * `const example: TimeoutPolicy = { attemptMs: 2_000 }`. A failure names the example's place and the diagnostic.
 *
 * Also: a small consumer file in that mode passes `zone: process.env.ZONE` and friends, which only compiles
 * while optional fields accept `undefined`; and every optional property of the public types says so.
 */
import path from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENTRIES, nameOf, programWith, publicDeclarations, ROOT, where } from './public-api.js';

/** Names the examples use without defining them: what the reader has in scope. */
const FREE_NAMES = `
type P = typeof import('proxyless');
declare const mesh: import('proxyless').Mesh;
declare const registry: import('proxyless').Registry;
declare const subsets: Record<string, Record<string, import('proxyless').SubsetSpec>>;
declare const users: import('proxyless').ServiceClient;
declare const endpoint: import('proxyless').Endpoint;
declare const ep: import('proxyless').Endpoint;
declare const ctx: import('proxyless').AttemptContext;
declare const error: unknown;
declare const records: Parameters<P['orderSrv']>[0];
declare const metadata: { set(key: string, value: string): void };
declare class UsersClient { constructor(address: string, credentials?: unknown); close(): void }
declare const creds: unknown;
declare function getUser(client: UsersClient, request: { id: string }, options: { deadline: number }): Promise<unknown>;
declare const id: string;
declare const ATTEMPT_MS: number;
declare function toEndpoints(body: unknown): readonly import('proxyless').Endpoint[];
declare const undiciFetch: typeof import('undici').fetch;
declare const Agent: typeof import('undici').Agent;
declare const caPem: string, clientPem: string, clientKeyPem: string;
declare const request: typeof import('undici').request;
declare const setGlobalDispatcher: typeof import('undici').setGlobalDispatcher;
interface MyTestServer { url: string; put(service: string, endpoints: readonly unknown[]): Promise<void>; answer(how: unknown): void; close(): Promise<void> }
declare function startMyTestServer(): Promise<MyTestServer>;
declare function myRegistry(options: { url: string }): import('proxyless').Registry;
declare const signal: AbortSignal;
declare const req: import('node:http').IncomingMessage;
declare const res: import('node:http').ServerResponse;
declare const http: typeof import('node:http');
declare const log: { info(...args: unknown[]): void; warn(...args: unknown[]): void; error(...args: unknown[]): void };
declare function ping(host: string, port: number, signal: AbortSignal): Promise<unknown>;
declare const ca: string, cert: string, key: string;
`;

interface Example {
  readonly at: string;
  readonly name: string;
  readonly text: string;
  /** The type a value example is checked against, or undefined for code. */
  readonly type: string | undefined;
}

const exampleDir = path.join(ROOT, 'test/types/.examples');
let program: ts.Program;
let examples: Example[];
let exported: Map<string, string>;
let prelude: string;

beforeAll(() => {
  const base = programWith(new Map());
  exported = exportedNames(base);
  prelude = importsOf(exported) + FREE_NAMES;
  examples = collectExamples(base, publicDeclarations(base), exported);
  const files = new Map(examples.map((e, i) => [path.join(exampleDir, `example-${i}.ts`), fileOf(e)]));
  files.set(path.join(exampleDir, 'consumer.ts'), CONSUMER);
  program = programWith(files);
}, 120_000);

describe('the @example blocks of the public types', () => {
  it('are found (the extraction itself works)', () => {
    expect(examples.length).toBeGreaterThan(60);
    expect(examples.some((e) => e.name === 'Mesh.warmup')).toBe(true);
    expect(examples.some((e) => e.type === 'TimeoutPolicy')).toBe(true);
  });

  it('compile with strict and exactOptionalPropertyTypes', () => {
    const failures: string[] = [];
    examples.forEach((e, i) => {
      const sf = program.getSourceFile(path.join(exampleDir, `example-${i}.ts`))!;
      const start = prelude.split('\n').length;
      for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
        const line = d.start === undefined ? 0 : sf.getLineAndCharacterOfPosition(d.start).line + 1 - start;
        failures.push(`${e.at} (${e.name}) @example, line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}\n    ${e.text.replace(/\n/g, '\n    ')}`);
      }
    });
    expect(failures, failures.join('\n\n')).toEqual([]);
  });

  it('a mistaken example is caught (the check can fail)', () => {
    const files = new Map([[path.join(exampleDir, 'wrong.ts'), `${prelude}\nconst example: TimeoutPolicy = { attemptMs: '2s' };\nvoid example;\n`]]);
    const p = programWith(files, { ...program.getCompilerOptions() });
    const diagnostics = p.getSemanticDiagnostics(p.getSourceFile(path.join(exampleDir, 'wrong.ts')));
    expect(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' ')).join(' ')).toMatch(/not assignable to type 'number/);
  });
});

/** A consumer with exactOptionalPropertyTypes passes values that may be undefined, as `process.env` gives them. */
const CONSUMER = `
import { createMesh, staticRegistry, dnsRegistry, consulRegistry, kubernetesRegistry, etcdRegistry, registerService, type CallOptions, type Policy } from 'proxyless';
import { meshDispatcher } from 'proxyless/undici';

const env = process.env;
const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
const policy: Policy = {
  timeout: { attemptMs: num(env.ATTEMPT_MS), totalMs: num(env.TOTAL_MS) },
  retry: { retries: num(env.RETRIES), budget: { ratio: num(env.BUDGET_RATIO) } },
  hashHeader: env.HASH_HEADER,
  maxConcurrent: num(env.MAX_CONCURRENT),
};
const mesh = createMesh({
  registry: staticRegistry({ users: ['127.0.0.1:8081'] }),
  zone: env.ZONE,
  discovery: { refreshMs: num(env.REFRESH_MS), maxServices: num(env.MAX_SERVICES) },
  defaults: policy,
  services: { users: { balancer: env.BALANCER === 'round-robin' ? 'round-robin' : undefined } },
});
const callOptions: CallOptions = { idempotent: env.IDEMPOTENT === '1' ? true : undefined, hashKey: env.USER_ID, signal: undefined };
void mesh.call('users', () => 1, callOptions);
void dnsRegistry({ servers: env.DNS ? [env.DNS] : undefined, mode: undefined });
void consulRegistry({ url: env.CONSUL_HTTP_ADDR, token: env.CONSUL_HTTP_TOKEN, dc: env.CONSUL_DC });
void kubernetesRegistry({ namespace: env.NAMESPACE, apiUrl: env.KUBE_API });
void etcdRegistry({ prefix: env.ETCD_PREFIX });
void registerService({ consul: { url: env.CONSUL_HTTP_ADDR }, service: { name: 'api', address: '127.0.0.1', port: 8080, id: env.POD_NAME } });
void meshDispatcher(mesh, { connections: num(env.CONNECTIONS) });
`;

describe('a consumer compiled with exactOptionalPropertyTypes', () => {
  it("passes possibly-undefined values (zone: process.env.ZONE and friends)", () => {
    const sf = program.getSourceFile(path.join(exampleDir, 'consumer.ts'))!;
    const messages = program.getSemanticDiagnostics(sf).map((d) => `line ${sf.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
    expect(messages, messages.join('\n')).toEqual([]);
  });

  it('every optional property of the public types accepts undefined explicitly', () => {
    const missing: string[] = [];
    for (const decl of publicDeclarations(program)) {
      const visit = (n: ts.Node): void => {
        if (ts.isBlock(n)) return;
        if (ts.isPropertySignature(n) && n.questionToken !== undefined && n.type !== undefined && !acceptsUndefined(n.type) && !mirrorsPeer(n)) {
          missing.push(`${where(n)} ${nameOf(n)}`);
        }
        ts.forEachChild(n, visit);
      };
      visit(decl);
    }
    expect([...new Set(missing)], 'add `| undefined` to these optional properties').toEqual([]);
  });
});

/**
 * Types that describe an optional peer's own API structurally (prom-client's metrics, `@opentelemetry/api`) are
 * not options: their optional properties must match the peer's declaration as it is, or the real module stops
 * being assignable under exactOptionalPropertyTypes (OTel's `MetricOptions.advice?: MetricAdvice` refuses
 * `undefined`). The compile of `withTelemetry(mesh, otel)` and `registerMeshMetrics` examples checks those.
 */
function mirrorsPeer(n: ts.Node): boolean {
  return /^(PromClient|Telemetry)/.test(nameOf(n));
}

function acceptsUndefined(t: ts.TypeNode): boolean {
  const k = t.kind;
  if (k === ts.SyntaxKind.UndefinedKeyword || k === ts.SyntaxKind.UnknownKeyword || k === ts.SyntaxKind.AnyKeyword) return true;
  return ts.isUnionTypeNode(t) && t.types.some(acceptsUndefined);
}

/** Every name exported by an entry point, with the entry it comes from (the first, when several export it). */
function exportedNames(p: ts.Program): Map<string, string> {
  const checker = p.getTypeChecker();
  const out = new Map<string, string>();
  for (const [entry, file] of Object.entries(ENTRIES)) {
    const module = checker.getSymbolAtLocation(p.getSourceFile(path.join(ROOT, file))!)!;
    for (const s of checker.getExportsOfModule(module)) if (!out.has(s.name)) out.set(s.name, entry);
  }
  return out;
}

function importsOf(names: ReadonlyMap<string, string>): string {
  const byEntry = new Map<string, string[]>();
  for (const [name, entry] of names) byEntry.set(entry, [...(byEntry.get(entry) ?? []), name]);
  // Type and value imports alike: `import { type X }` would refuse a value, and isolatedModules accepts both here.
  return [...byEntry].map(([entry, list]) => `import { ${list.join(', ')} } from '${entry}';`).join('\n') + '\n';
}

/** The example as a file: imports of its own hoisted (those of the package are in the prelude), the rest wrapped. */
function fileOf(e: Example): string {
  if (e.type !== undefined) return `${prelude}\nconst example: ${e.type} = (\n${e.text}\n);\nvoid example;\nexport {};\n`;
  const lines = e.text.split('\n');
  const imports = lines.filter((l) => /^\s*import\s/.test(l) && !/from 'proxyless(\/\w+)?'/.test(l));
  const body = lines.filter((l) => !/^\s*import\s/.test(l));
  // A name the example imports from elsewhere (prom-client's `Registry`) wins over the package's.
  const own = new Set(imports.flatMap((l) => (/\{([^}]*)\}/.exec(l)?.[1] ?? '').split(',').map((s) => s.trim().split(/\s+as\s+/).pop()!)));
  const names = new Map([...exported].filter(([name]) => !own.has(name)));
  return `${importsOf(names)}${FREE_NAMES}${imports.join('\n')}\nexport async function example(): Promise<void> {\n${body.join('\n')}\n}\n`;
}

function collectExamples(p: ts.Program, decls: ReadonlySet<ts.Declaration>, names: ReadonlyMap<string, string>): Example[] {
  const out: Example[] = [];
  const seen = new Set<ts.Node>();
  const tags = new Set<ts.JSDocTag>(); // a variable's tags are its statement's too: each is taken once
  for (const decl of decls) {
    const visit = (n: ts.Node): void => {
      if (ts.isBlock(n) || seen.has(n)) return;
      seen.add(n);
      for (const tag of ts.getJSDocTags(n)) {
        if (tag.tagName.text !== 'example' || tags.has(tag)) continue;
        tags.add(tag);
        let text = exampleText(tag);
        if (text === '') continue;
        // `port: 8080` on a property is a fragment of its owner (as a statement it would pass as a label).
        if (/^[A-Za-z_$][\w$]*\s*:(?!:)/.test(text) && isValue(`{ ${text} }`)) text = `{ ${text} }`;
        out.push({ at: where(n), name: nameOf(n), text, type: isValue(text) ? typeOf(n, names, text) : undefined });
      }
      ts.forEachChild(n, visit);
    };
    visit(decl);
  }
  void p;
  return out;
}

function exampleText(tag: ts.JSDocTag): string {
  const raw = typeof tag.comment === 'string' ? tag.comment : ts.getTextOfJSDocComment(tag.comment) ?? '';
  return raw.replace(/^\s*```\w*\n?/, '').replace(/\n?```\s*$/, '').trim();
}

/** Whether an example is one expression of the value kind (an object, array, number, string or function). */
function isValue(text: string): boolean {
  const sf = ts.createSourceFile('value.ts', `(\n${text}\n)`, ts.ScriptTarget.Latest, true);
  if ((sf as unknown as { parseDiagnostics: unknown[] }).parseDiagnostics.length > 0 || sf.statements.length !== 1) return false;
  const s = sf.statements[0]!;
  if (!ts.isExpressionStatement(s)) return false;
  let e: ts.Expression = s.expression;
  while (ts.isParenthesizedExpression(e)) e = e.expression;
  return ts.isObjectLiteralExpression(e) || ts.isArrayLiteralExpression(e) || ts.isNumericLiteral(e) || ts.isStringLiteral(e) ||
    ts.isArrowFunction(e) || ts.isNoSubstitutionTemplateLiteral(e) || (ts.isPrefixUnaryExpression(e) && ts.isNumericLiteral(e.operand));
}

/** The type a value example on `n` is checked against: `Owner`, or `Owner['key']` for a property; undefined when not nameable. */
function typeOf(n: ts.Node, names: ReadonlyMap<string, string>, text = ''): string | undefined {
  // `{ maxConcurrent: 100, maxQueued: 50 }` on `Policy.maxQueued` shows the key in its place: check it as a Policy.
  if (ts.isPropertySignature(n) && ts.isIdentifier(n.name) && new RegExp(`^\\{\\s*(\\w+:[^]*,\\s*)?${n.name.text}\\s*:`).test(text)) {
    return typeOf(n.parent.parent ?? n.parent, names) ?? (ts.isInterfaceDeclaration(n.parent) && names.has(n.parent.name.text) ? n.parent.name.text : undefined);
  }
  if ((ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) && names.has(n.name.text)) return n.name.text;
  if (ts.isPropertySignature(n) && (ts.isIdentifier(n.name) || ts.isStringLiteral(n.name))) {
    const owner = n.parent;
    const key = JSON.stringify(n.name.text).replace(/"/g, "'");
    if (ts.isInterfaceDeclaration(owner) && names.has(owner.name.text)) return `${owner.name.text}[${key}]`;
    if (ts.isTypeLiteralNode(owner)) {
      const up = ts.isPropertySignature(owner.parent) || ts.isTypeAliasDeclaration(owner.parent) ? typeOf(owner.parent, names) : undefined;
      return up === undefined ? undefined : `Exclude<${up}, undefined | false>[${key}]`;
    }
  }
  return undefined;
}
