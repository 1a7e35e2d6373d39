// A package whose addon is missing (no prebuild fits, and npm 11 ran no install
// script) says what to do, not only what node-gyp-build did not find.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { packageRoot } from './helpers';

const copy = mkdtempSync(path.join(tmpdir(), 'shmchan-no-addon-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

it('explains how to get the addon when there is none', () => {
  cpSync(path.join(packageRoot, 'package.json'), path.join(copy, 'package.json'));
  cpSync(path.join(packageRoot, 'dist'), path.join(copy, 'dist'), { recursive: true });
  mkdirSync(path.join(copy, 'node_modules'));
  for (const dependency of ['node-gyp-build', 'msgpackr'])
    symlinkSync(path.join(packageRoot, 'node_modules', dependency), path.join(copy, 'node_modules', dependency));
  const env = { ...process.env };
  delete env.SHMCHAN_ADDON_PATH;
  const result = spawnSync(process.execPath, ['-e', "require('./dist/index.js')"], { cwd: copy, encoding: 'utf8', env });
  expect(result.status).toBe(1);
  expect(result.stderr).toContain(`shmchan has no native addon for ${process.platform}-${process.arch}`);
  expect(result.stderr).toContain("npm install-scripts approve shmchan");
  expect(result.stderr).toContain("npm rebuild shmchan");
});
