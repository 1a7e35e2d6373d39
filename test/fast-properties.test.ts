// The data path reads the layout constants (L.OFF_HEAD, L.RECORD_DATA, ...) about
// ten times per message, from the module src/core/layout.ts. If V8 kept that
// module's exports object as a dictionary, each read would be a hash lookup
// instead of a constant. This checks its shape with V8's own test hook (in a
// child process: the flag must be given at start), not any timing.
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

it('gives the data path its layout constants as a fast-properties object', () => {
  const script = [
    "const layout = require('./dist/core/layout.js');",
    'console.log(JSON.stringify({ fast: %HasFastProperties(layout), keys: Object.keys(layout).length }));',
  ].join('\n');
  const out = JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '-e', script], { cwd: packageRoot, encoding: 'utf8' }));
  expect(out).toEqual({ fast: true, keys: expect.any(Number) });
  expect(out.keys).toBeGreaterThan(40);
});
