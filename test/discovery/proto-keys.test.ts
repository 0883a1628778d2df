import { describe, expect, it } from 'vitest';
import { consulRegistry } from '../../src/discovery/consul.js';
import { staticRegistry } from '../../src/discovery/static.js';
import { ids } from './fakes.js';

const signal = new AbortController().signal;

describe('keys from user input that are Object.prototype names', () => {
  it('defect 18: staticRegistry serves, sets and watches a service named __proto__', async () => {
    const registry = staticRegistry(JSON.parse('{"__proto__": ["127.0.0.1:1"]}'));
    expect(ids(await registry.resolve('__proto__', { signal }))).toEqual(['127.0.0.1:1']);
    expect(await registry.resolve('constructor', { signal })).toEqual([]);
    const pushed: string[][] = [];
    registry.watch!('__proto__', (list) => pushed.push(ids(list)), () => {});
    registry.set('__proto__', ['127.0.0.1:2']);
    expect(pushed).toEqual([['127.0.0.1:2']]);
    expect(ids(await registry.resolve('__proto__', { signal }))).toEqual(['127.0.0.1:2']);
  });

  it('defect 18: staticRegistry refuses a map whose `__proto__:` literal key set its prototype, instead of losing the service', () => {
    const literal = { __proto__: ['127.0.0.1:1'], users: ['127.0.0.1:2'] } as unknown as Record<string, string[]>;
    expect(() => staticRegistry(literal)).toThrow(/__proto__.*JSON\.parse|set\('__proto__'/);
  });

  it('defect 18: Consul meta keys, check statuses and zoneMetaKey that are Object.prototype names are plain data', async () => {
    const entry = (id: string, status: string, meta: string) =>
      `{"Node":{"Node":"n1","Address":"127.0.0.1","Datacenter":"dc1","Meta":{}},` +
      `"Service":{"ID":"${id}","Service":"users","Address":"127.0.0.1","Port":8081,"Tags":[],"Meta":${meta}},"Checks":[{"Status":"${status}"}]}`;
    const body = `[${entry('a', 'passing', '{"__proto__":"x","version":"2"}')},${entry('b', 'constructor', '{}')},${entry('c', 'toString', '{}')}]`;
    const registry = consulRegistry({ env: {}, watch: false, passingOnly: false, zoneMetaKey: 'constructor', fetch: async () => new Response(body) });
    const list = await registry.resolve('users', { signal });
    // An unknown status counts as critical, whatever its name; an absent meta key falls back to the datacenter.
    expect(ids(list)).toEqual(['a@n1']);
    expect(list[0]!.zone).toBe('dc1');
    expect(Object.hasOwn(list[0]!.meta, '__proto__')).toBe(true);
    expect(list[0]!.meta['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(list[0]!.meta)).toBe(Object.prototype);
    registry.close();
  });
});
