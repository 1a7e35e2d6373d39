// The data path reads the layout constants (L.OFF_HEAD, L.RECORD_DATA, ...) about
// ten times per message. The addon's own object is in dictionary mode, where each
// read is a hash lookup instead of a constant; src/binding.ts copies it into a
// plain object. This checks the copy's shape with V8's own test hook (in a child
// process: the flag must be given at start), not any timing.
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

it('gives the data path its layout constants as a fast-properties object, with every value of the addon', () => {
  const script = [
    "const { layout, native } = require('./dist/core/binding.js');",
    'const same = Object.keys(native.layout).every((k) => layout[k] === native.layout[k]);',
    'console.log(JSON.stringify({ fast: %HasFastProperties(layout), same, keys: Object.keys(layout).length }));',
  ].join('\n');
  const out = JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', '-e', script], { cwd: packageRoot, encoding: 'utf8' }));
  expect(out).toEqual({ fast: true, same: true, keys: expect.any(Number) });
  expect(out.keys).toBeGreaterThan(40);
});
