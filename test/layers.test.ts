/**
 * The tree's rules (docs/ARCHITECTURE.md), checked from the sources: no import cycles, src/shared
 * imports nothing outside itself, the product never imports the simulator, and a worker imports
 * from src/main only the engine client's capped reader.
 */
import t from 'tap';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const files: string[] = [];
const walk = (d: string) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) files.push(p);
  }
};
walk(join(ROOT, 'src'));
const rel = (p: string) => relative(ROOT, p);

/** Every relative import (type-only ones too: a cycle of types is still a cycle to read). */
const graph = new Map<string, string[]>();
for (const f of files) {
  const deps: string[] = [];
  for (const m of readFileSync(f, 'utf8').matchAll(/^import\s[^;]*?from\s+'(\.[^']+)'/gms)) {
    const target = resolve(dirname(f), m[1]!) + '.ts';
    if (existsSync(target)) deps.push(target);
  }
  graph.set(f, deps);
}

t.test('no import cycles', async (t) => {
  const state = new Map<string, 1 | 2>();
  const cycles: string[] = [];
  const dfs = (n: string, stack: string[]) => {
    state.set(n, 1);
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d].map(rel).join(' -> '));
      else if (!state.get(d)) dfs(d, stack);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const f of files) if (!state.get(f)) dfs(f, []);
  t.same(cycles, []);
});

t.test('imports follow the layers', async (t) => {
  const wrong: string[] = [];
  for (const [f, deps] of graph) {
    const from = rel(f);
    for (const d of deps.map(rel)) {
      if (from.startsWith('src/shared/') && !d.startsWith('src/shared/'))
        wrong.push(`${from} -> ${d} (src/shared imports only src/shared)`);
      if (!from.startsWith('src/sim/') && d.startsWith('src/sim/')) wrong.push(`${from} -> ${d} (the product never imports the simulator)`);
      if (
        from.startsWith('src/workers/') &&
        d.startsWith('src/main/') &&
        d !== 'src/main/engine/engine-client.ts' &&
        d !== 'src/main/errors.ts'
      )
        wrong.push(`${from} -> ${d} (a worker imports from src/main only the engine client)`);
      if (from.startsWith('src/sim/') && d.startsWith('src/main/'))
        wrong.push(`${from} -> ${d} (the demo runs the CLI, it does not import it)`);
    }
  }
  t.same(wrong, []);
});
