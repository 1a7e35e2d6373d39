// The layout constants: src/core/layout.ts is generated from the wire format in
// native/include/shmchan.h (scripts/generate-layout.mjs), and the addon's own
// `layout` export, which the data path reads today, agrees with both.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { native } from '../dist/binding.js';
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

it("agrees with every constant of the addon's layout export", () => {
  const fromAddon = native.layout as unknown as Record<string, number>;
  const fromHeader = generated as unknown as Record<string, number>;
  const names = Object.keys(fromAddon);
  expect(names.length).toBeGreaterThan(0);
  for (const name of names) expect({ name, value: fromHeader[name] }).toEqual({ name, value: fromAddon[name] });
});
