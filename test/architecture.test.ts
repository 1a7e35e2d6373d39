// The shape of src/, checked from its import statements: the layers import only
// downward, nothing imports in a circle, and the rules that keep one path for
// errors and one loader for the addon hold. Reads the TypeScript sources; runs
// nothing.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

const src = path.join(packageRoot, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.m?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

const files = sourceFiles(src).map((file) => path.relative(src, file));
const text = new Map(files.map((file) => [file, readFileSync(path.join(src, file), 'utf8')]));

/** The modules a file names: import ... from, export ... from, import(), require(). */
function specifiers(file: string): string[] {
  const source = text.get(file)!;
  const found: string[] = [];
  for (const pattern of [/^(?:import|export)\b[^;]*?\sfrom\s+'([^']+)'/gm, /\bimport\(\s*'([^']+)'\s*\)/g, /\brequire\(\s*'([^']+)'\s*\)/g])
    for (const match of source.matchAll(pattern)) found.push(match[1]);
  return found;
}

/** A relative specifier as the source file it names. */
function resolve(from: string, specifier: string): string {
  const base = path.join(path.dirname(from), specifier).replace(/\.m?js$/, '');
  for (const candidate of [`${base}.ts`, `${base}.mts`, path.join(base, 'index.ts')]) if (text.has(candidate)) return candidate;
  throw new Error(`${from} imports ${specifier}, which is not a file in src/`);
}

const imports = new Map(
  files.map((file) => [file, specifiers(file).filter((s) => s.startsWith('.')).map((s) => resolve(file, s))]),
);
const packages = new Map(files.map((file) => [file, specifiers(file).filter((s) => !s.startsWith('.'))]));

const layer = (file: string) => (file.includes('/') ? file.split('/')[0] : 'top');

it('has no import cycle', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (file: string, trail: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
      return;
    }
    state.set(file, 'open');
    for (const next of imports.get(file)!) visit(next, [...trail, file]);
    state.set(file, 'done');
  };
  for (const file of files) visit(file, []);
  expect(cycles).toEqual([]);
});

it('imports only downward: core <- nats, features <- cli, bench', () => {
  // what each folder may import from src/ besides itself
  const allowed: Record<string, string[]> = {
    core: [],
    nats: ['core'],
    top: ['core', 'nats', 'top'],
    bench: ['top'],
    cli: ['core', 'nats', 'top', 'bench'],
  };
  const wrong: string[] = [];
  for (const [file, targets] of imports)
    for (const target of targets) {
      const from = layer(file);
      const to = layer(target);
      if (from !== to && !allowed[from].includes(to)) wrong.push(`${file} -> ${target}`);
    }
  expect(wrong).toEqual([]);
});

it('the core needs no package beyond node:, msgpackr and the addon loader; the NATS client only in src/nats, OpenTelemetry only in src/otel.ts', () => {
  const wrong: string[] = [];
  for (const [file, names] of packages)
    for (const name of names) {
      if (name.startsWith('node:')) continue;
      if (name.startsWith('@nats-io/') && layer(file) === 'nats') continue;
      if (name === '@opentelemetry/api' && file === 'otel.ts') continue;
      if (layer(file) === 'core' && ['msgpackr', 'node-gyp-build'].includes(name)) continue;
      if (layer(file) !== 'core' && name === 'msgpackr') continue;
      wrong.push(`${file} -> ${name}`);
    }
  expect(wrong).toEqual([]);
});

it('loads the addon in one file and makes every ShmChanError in one file', () => {
  const loaders = files.filter((file) => packages.get(file)!.includes('node-gyp-build'));
  expect(loaders).toEqual(['core/binding.ts']);
  const makers = files.filter((file) => /new ShmChanError\(/.test(text.get(file)!));
  expect(makers).toEqual(['core/errors.ts']);
});

it('never tells errors apart by their message text', () => {
  // the NATS client's own errors are the one exception: some carry only a text
  const theirs = ['nats/client.ts'];
  const matching = files.filter(
    (file) => !theirs.includes(file) && /\.test\([^)]*\bmessage\b|\.message\b[^;]*?\.(includes|match|startsWith)\(/.test(text.get(file)!),
  );
  expect(matching).toEqual([]);
});
