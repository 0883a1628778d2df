import { cruise, type ICruiseResult } from 'dependency-cruiser';
import { beforeAll, describe, expect, it } from 'vitest';
import { LAYERS, layerOf } from './layers.js';

/** At most this many imports may point up a layer (each is listed when the test fails). */
const MAX_UPWARD = 3;

let result: ICruiseResult;

beforeAll(async () => {
  const cruised = await cruise(['src'], {
    tsPreCompilationDeps: true, // type-only imports count: they tie the files together just the same
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
  });
  result = cruised.output as ICruiseResult;
}, 60_000);

const local = (dep: { resolved: string; coreModule?: boolean; couldNotResolve?: boolean }): boolean =>
  dep.resolved.startsWith('src/') && !dep.coreModule && !dep.couldNotResolve;

describe('the import graph of src/', () => {
  it('has no import circle', () => {
    const circles: string[] = [];
    for (const m of result.modules) {
      for (const d of m.dependencies) if (d.circular && local(d)) circles.push(`${m.source} -> ${d.resolved}`);
    }
    expect(result.modules.length).toBeGreaterThan(50); // the cruise really read the tree
    expect(circles).toEqual([]);
  });

  it(`has at most ${MAX_UPWARD} imports that point up a layer`, () => {
    const upward: string[] = [];
    let imports = 0;
    for (const m of result.modules) {
      if (!m.source.startsWith('src/')) continue;
      for (const d of m.dependencies) {
        if (!local(d)) continue;
        imports++;
        const from = layerOf(m.source);
        const to = layerOf(d.resolved);
        if (to > from) upward.push(`${m.source} (${LAYERS[from]![0]}) -> ${d.resolved} (${LAYERS[to]![0]})`);
      }
    }
    console.log(`imports in src/: ${imports}; pointing up a layer: ${upward.length}\n${upward.join('\n')}`);
    expect(imports).toBeGreaterThan(100);
    expect(upward.length, upward.join('\n')).toBeLessThanOrEqual(MAX_UPWARD);
  });
});
