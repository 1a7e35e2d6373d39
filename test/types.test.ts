// The published types: the checks of test/types (raw channels carry Buffers,
// misuse is a type error), and a TypeScript project that installs the packed
// package: with default settings (no @types listed: the package's .d.ts files
// bring Node's types) and with the old node10 resolution, which reads no exports;
// publint and arethetypeswrong over the tarball (scripts/test-prebuild.sh runs them
// too, over the tarball with the prebuilds).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { packageRoot } from './helpers';

const tsc = path.join(packageRoot, 'node_modules', '.bin', 'tsc');
/** TypeScript 5, which still has node10 resolution: the copy @arethetypeswrong/core checks with. */
const tsc5 = createRequire(path.join(packageRoot, 'node_modules', '@arethetypeswrong', 'core', 'package.json')).resolve('typescript/lib/tsc.js');
const work = mkdtempSync(path.join(tmpdir(), 'shmchan-types-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let tarball: string | undefined;
/** The package as npm packs it (without prepack's prebuilds: scripts/test-prebuild.sh has those). */
function packed(): string {
  if (tarball !== undefined) return tarball;
  const file = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: packageRoot, encoding: 'utf8' });
  return (tarball = path.join(work, file.trim().split('\n').pop()!));
}

/** Runs a compiler; answers its output (empty when the project compiles). */
function compile(command: string[], cwd: string): string {
  try {
    execFileSync(command[0], command.slice(1), { cwd, encoding: 'utf8', stdio: 'pipe' });
    return '';
  } catch (error) {
    const { stdout, stderr } = error as { stdout: string; stderr: string };
    return `${stdout}${stderr}` || String(error);
  }
}

it('test/types compiles: raw channels carry Buffers, and every @ts-expect-error line is an error', () => {
  expect(compile([tsc, '-p', 'test/types'], packageRoot)).toBe('');
});

it('a project that installs the packed package compiles with default settings, and under node10 resolution', () => {
  const project = path.join(work, 'project');
  const installed = path.join(project, 'node_modules', 'shmchan');
  cpSync(path.join(packageRoot, 'test', 'types'), project, { recursive: true });
  execFileSync('mkdir', ['-p', installed]);
  execFileSync('tar', ['-xzf', packed(), '-C', installed, '--strip-components=1']);
  // the package's dependencies and peers, as an install would put them beside it
  for (const entry of readdirSync(path.join(packageRoot, 'node_modules')))
    if (!entry.startsWith('.')) symlinkSync(path.join(packageRoot, 'node_modules', entry), path.join(project, 'node_modules', entry));

  writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ files: ['raw.ts', 'esm.mts'] }));
  expect(compile([tsc, '-p', '.'], project)).toBe('');

  writeFileSync(
    path.join(project, 'tsconfig.json'),
    // skipLibCheck: the NATS client's own types need exports; what matters is that every import of raw.ts resolves
    JSON.stringify({ compilerOptions: { module: 'commonjs', moduleResolution: 'node10', strict: true, noEmit: true, types: [], skipLibCheck: true }, files: ['raw.ts'] }),
  );
  expect(compile([process.execPath, tsc5, '-p', '.'], project)).toBe('');
});

it('publint and arethetypeswrong have nothing to say about the packed package', () => {
  const bin = (name: string) => path.join(packageRoot, 'node_modules', '.bin', name);
  const lint = execFileSync(bin('publint'), ['run', '--strict', packed()], { encoding: 'utf8' });
  expect(lint).not.toMatch(/^(Errors|Warnings|Suggestions):/m);
  const types = execFileSync(bin('attw'), [packed(), '--format', 'json'], { encoding: 'utf8' }); // exits 1 on a problem
  expect(JSON.parse(types).problems).toEqual({});
});
