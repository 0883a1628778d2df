/**
 * Error `code`s are literal types (issue 14, "Rough edges": strict-friendly types). Compiled as a consumer with
 * the strictest settings would: each error class's `code` is exactly its literal, `instanceof` narrows
 * `error.code` to it, and `MeshErrorCode` is exactly the union of the core classes' codes. A check that can
 * fail: the same assertions on a `string` code are refused.
 */
import path from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { programWith, ROOT } from './public-api.js';

const dir = path.join(ROOT, 'test/types/.error-codes');
const CORE = {
  NoEndpointsError: 'ENOENDPOINTS',
  CircuitOpenError: 'ECIRCUITOPEN',
  TimeoutError: 'ETIMEDOUT',
  BulkheadFullError: 'EBULKHEAD',
  AdmissionRejectedError: 'EADMISSION',
  DiscoveryError: 'EDISCOVERY',
  CallFailedError: 'ECALLFAILED',
  FaultInjectedError: 'EFAULT',
  MeshClosedError: 'ECLOSED',
  InvalidServiceNameError: 'EBADSERVICE',
} as const;
const REGISTRIES = { ConsulError: 'ECONSUL', EtcdError: 'EETCD', KubernetesError: 'EKUBERNETES' } as const;
const ALL = { ...CORE, ...REGISTRIES };

const EQ = 'type Eq<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;';

const GOOD = `
import { ${Object.keys(ALL).join(', ')}, type MeshErrorCode } from 'proxyless';
${EQ}
${Object.entries(ALL).map(([cls, code]) => `const eq${cls}: Eq<${cls}['code'], '${code}'> = true;\nvoid eq${cls};`).join('\n')}
const union: Eq<${Object.keys(CORE).map((c) => `${c}['code']`).join(' | ')}, MeshErrorCode> = true;
void union;
export function narrow(error: unknown): void {
${Object.entries(ALL).map(([cls, code]) => `  if (error instanceof ${cls}) { const c: '${code}' = error.code; void c; }`).join('\n')}
}
`;

/** What the types said before issue 14: a plain `string` code. Must not compile. */
const BAD = `
import { TimeoutError } from 'proxyless';
${EQ}
declare class Loose extends TimeoutError { code: string }
const eq: Eq<Loose['code'], 'ETIMEDOUT'> = true;
void eq;
export function narrow(error: unknown): void {
  if (error instanceof TimeoutError) { const c: 'ECLOSED' = error.code; void c; }
}
`;

let program: ts.Program;
const diagnostics = (name: string): string[] => {
  const sf = program.getSourceFile(path.join(dir, name))!;
  return program.getSemanticDiagnostics(sf).map((d) => `line ${sf.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
};

beforeAll(() => {
  program = programWith(new Map([[path.join(dir, 'good.ts'), GOOD], [path.join(dir, 'bad.ts'), BAD]]));
}, 120_000);

describe('error codes are literal types', () => {
  it('each class has its literal code, instanceof narrows to it, MeshErrorCode is their union', () => {
    const found = diagnostics('good.ts');
    expect(found, found.join('\n')).toEqual([]);
  });

  it('the check can fail: a string code, or the wrong literal, is refused', () => {
    const found = diagnostics('bad.ts');
    expect(found.join('\n')).toMatch(/line 5: Type 'true' is not assignable to type 'false'/);
    expect(found.join('\n')).toMatch(/line 8: Type '"ETIMEDOUT"' is not assignable to type '"ECLOSED"'/);
  });
});
