// The import direction of src/ (README, "Inside"): the folders below the domain never reach up
// into it, and kube/ never into server/. Any import that does fails here.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Folder -> folders it must not import from. */
const FORBIDDEN: Record<string, readonly string[]> = {
  store: ['allocation', 'server', 'client', 'kube'],
  keys: ['allocation', 'server', 'client', 'store', 'deposit', 'kube'],
  deposit: ['allocation', 'server', 'client', 'kube'],
  client: ['allocation', 'server', 'store', 'deposit', 'kube'],
  kube: ['server'],
  beacon: ['allocation', 'server', 'client', 'store', 'kube'],
};

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Every relative import of a file (static, type-only and dynamic), as src/-relative .ts paths. */
function importsOf(file: string, text: string): string[] {
  const specs = [...text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)].map(
    (m) => m[1] ?? '',
  );
  return specs.map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
}

describe('layering of src/', () => {
  it('no folder imports from a layer above it', async () => {
    const edges = new Set<string>();
    for (const file of await sources(SRC)) {
      const from = relative(SRC, file);
      const folder = from.includes('/') ? (from.split('/')[0] ?? '') : '';
      for (const to of importsOf(file, await readFile(file, 'utf8'))) {
        const target = to.includes('/') ? (to.split('/')[0] ?? '') : '';
        if (FORBIDDEN[folder]?.includes(target)) edges.add(`${from} -> ${to}`);
      }
    }
    // The wire contract (api/) stands on errors.ts alone: everyone may import it.
    for (const file of await sources(join(SRC, 'api'))) {
      for (const to of importsOf(file, await readFile(file, 'utf8')))
        if (!to.startsWith('api/') && to !== 'errors.ts')
          edges.add(`${relative(SRC, file)} -> ${to}`);
    }
    expect([...edges].sort(), 'imports that run back up').toEqual([]);
  });

  it('no file imports itself through others (type imports count too)', async () => {
    const graph = new Map<string, string[]>();
    for (const file of await sources(SRC))
      graph.set(relative(SRC, file), importsOf(file, await readFile(file, 'utf8')));
    const cycles: string[] = [];
    const done = new Set<string>();
    const path: string[] = [];
    const visit = (node: string) => {
      path.push(node);
      for (const next of graph.get(node) ?? []) {
        const at = path.indexOf(next);
        if (at >= 0) cycles.push(path.slice(at).join(' -> '));
        else if (!done.has(next)) visit(next);
      }
      path.pop();
      done.add(node);
    };
    for (const node of graph.keys()) if (!done.has(node)) visit(node);
    expect(cycles).toEqual([]);
  });
});
