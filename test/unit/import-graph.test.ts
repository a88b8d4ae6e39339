/**
 * The import graph runs one way (README, "How it is built"): each folder of src/ imports only
 * from folders below it, and no module imports itself back through others — type-only imports
 * included, which ESLint's import-x/no-cycle does not see.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/**
 * The layers, bottom first. A module may import from its own layer's folder and from any layer
 * below; `.` is a module directly in src/ (errors.ts, check.ts, units.ts, host.ts, doctor.ts,
 * index.ts), placed by name.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'check.ts'],
  ['kvm'],
  ['units.ts', 'host.ts', 'memory'],
  ['arch/x86', 'devices', 'debug'],
  ['loader', 'io', 'bios'],
  ['board'],
  ['vcpu'],
  ['gdb', 'snapshot'],
  ['machine', 'doctor.ts'],
  ['index.ts', 'domains'],
  ['cli', 'testing', 'qemu'],
];

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return walk(full);
    return /\.(ts|cts)$/.test(entry.name) ? [full] : [];
  });
}

/** Every relative import and export-from of a module, type-only ones included, resolved to a .ts file. */
export function importsOf(file: string, source: string): string[] {
  const specifiers = [...source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*'(\.[^']+)'/g)].map((m) => m[1]!);
  const dynamic = [...source.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)].map((m) => m[1]!);
  return [...specifiers, ...dynamic].map((spec) =>
    path
      .resolve(path.dirname(file), spec)
      .replace(/\.js$/, '.ts')
      .replace(/\.cjs$/, '.cts'),
  );
}

/** The layer a module belongs to: its folder under src/ (two levels for arch/x86), or its own name at the top. */
export function layerOf(file: string): { name: string; rank: number } {
  const rel = path.relative(SRC, file).split(path.sep);
  const name = rel.length === 1 ? rel[0]! : rel[0] === 'arch' ? `${rel[0]}/${rel[1]}` : rel[0]!;
  const rank = LAYERS.findIndex((layer) => layer.includes(name));
  return { name, rank };
}

/** A cycle in a module graph, as a list of modules, or undefined. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('the import graph', () => {
  const files = walk(SRC);
  const graph = new Map(files.map((file) => [file, importsOf(file, readFileSync(file, 'utf8')).filter((f) => f.startsWith(SRC))]));

  it('places every module in a layer', () => {
    const unplaced = files.filter((file) => layerOf(file).rank < 0).map((file) => path.relative(SRC, file));
    expect(unplaced, 'add the folder to LAYERS here and to the README graph').toEqual([]);
  });

  it('imports only from the same layer or below', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      const from = layerOf(file);
      for (const target of imports) {
        const to = layerOf(target);
        if (to.rank > from.rank) upward.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no cycle between modules, type-only imports included', () => {
    const cycle = findCycle(graph);
    expect(cycle?.map((file) => path.relative(SRC, file))).toBeUndefined();
  });

  it('has no cycle between the folders of one layer', () => {
    const folders = new Map<string, Set<string>>();
    for (const [file, imports] of graph) {
      const from = layerOf(file).name;
      const targets = folders.get(from) ?? new Set<string>();
      for (const target of imports) if (layerOf(target).name !== from) targets.add(layerOf(target).name);
      folders.set(from, targets);
    }
    expect(findCycle(new Map([...folders].map(([k, v]) => [k, [...v]])))).toBeUndefined();
  });
});

describe('findCycle and importsOf (the checker itself)', () => {
  it('finds a cycle and passes a DAG', () => {
    expect(
      findCycle(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
        ]),
      ),
    ).toEqual(['a', 'b', 'c', 'a']);
    expect(
      findCycle(
        new Map([
          ['a', ['b', 'c']],
          ['b', ['c']],
          ['c', []],
        ]),
      ),
    ).toBeUndefined();
  });

  it('sees value, type-only, re-export and dynamic imports', () => {
    const file = path.join(SRC, 'vcpu', 'x.ts');
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../board/b.js';",
      "export { c } from './c.js';",
      "export type { D } from './d.js';",
      "const e = await import('./e.js');",
      "import x from 'node:fs';",
    ].join('\n');
    expect(importsOf(file, source).map((f) => path.relative(SRC, f))).toEqual([
      'vcpu/a.ts',
      'board/b.ts',
      'vcpu/c.ts',
      'vcpu/d.ts',
      'vcpu/e.ts',
    ]);
  });
});
