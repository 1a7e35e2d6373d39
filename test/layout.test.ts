// The layout constants: src/core/layout.ts is generated from the wire format in
// native/include/shmchan.h (scripts/generate-layout.mjs), the one definition,
// and what the generator read agrees with what the C compiler makes of it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import * as generated from '../dist/core/layout.js';
import { packageRoot } from './helpers';

const work = mkdtempSync(path.join(os.tmpdir(), 'shmchan-layout-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const generator = (args: string[]) =>
  spawnSync(process.execPath, ['scripts/generate-layout.mjs', ...args], { cwd: packageRoot, encoding: 'utf8' });

it('has src/core/layout.ts as the header gives it (npm run layout rewrites it)', () => {
  const result = generator(['--check']);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
});

it('says which constant differs when the file is not what the header gives', () => {
  const stale = path.join(work, 'layout.ts');
  const committed = readFileSync(path.join(packageRoot, 'src/core/layout.ts'), 'utf8');
  writeFileSync(stale, committed.replace('export const OFF_TAIL = 128;', 'export const OFF_TAIL = 132;'));
  const result = generator(['--check', '--output', stale]);
  expect(result.status).toBe(1);
  expect(result.stderr).toContain('OFF_TAIL: 132, but the header gives 128');
});

it('agrees with what the C compiler makes of the header, constant by constant', () => {
  const names = Object.keys(generated).filter((name) => typeof (generated as Record<string, unknown>)[name] === 'number');
  expect(names.length).toBeGreaterThan(60);
  const program = [
    '#include <stdio.h>',
    '#include "shmchan.h"',
    'int main(void) {',
    ...names.map((name) => `  printf("%s %llu\\n", "${name}", (unsigned long long)(SHMCHAN_${name}));`),
    '  return 0;',
    '}',
  ].join('\n');
  writeFileSync(path.join(work, 'layout.c'), program);
  execFileSync('cc', ['-std=c11', '-Inative/include', path.join(work, 'layout.c'), '-o', path.join(work, 'layout')], { cwd: packageRoot });
  const fromCompiler = Object.fromEntries(
    execFileSync(path.join(work, 'layout'), { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
      .map(([name, value]) => [name, Number(value)]),
  );
  const fromHeader = Object.fromEntries(names.map((name) => [name, (generated as Record<string, number>)[name]]));
  expect(fromHeader).toEqual(fromCompiler);
});
