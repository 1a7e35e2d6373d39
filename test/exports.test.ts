import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: packageRoot, encoding: 'utf8' }).trim();

it("works with require('shmchan')", () => {
  expect(run(['-e', "const s = require('shmchan'); console.log(typeof s.Channel, typeof s.ShmChanError)"])).toBe('function function');
});

it("works with import { Channel } from 'shmchan', and both entries share one class", () => {
  const script = "import { Channel, ShmChanError } from 'shmchan'; import { createRequire } from 'node:module'; const cjs = createRequire(import.meta.url)('shmchan'); console.log(typeof Channel, Channel === cjs.Channel, ShmChanError === cjs.ShmChanError)";
  expect(run(['--input-type=module', '-e', script])).toBe('function true true');
});

it('exports list, createReadStream and createWriteStream from both entries, as the same functions', () => {
  const names = ['list', 'createReadStream', 'createWriteStream'];
  expect(run(['-e', `const s = require('shmchan'); console.log(${JSON.stringify(names)}.map((n) => typeof s[n]).join(' '))`])).toBe(
    'function function function',
  );
  const script = `import * as esm from 'shmchan'; import { createRequire } from 'node:module'; const cjs = createRequire(import.meta.url)('shmchan'); console.log(${JSON.stringify(names)}.map((n) => typeof esm[n] === 'function' && esm[n] === cjs[n]).join(' '))`;
  expect(run(['--input-type=module', '-e', script])).toBe('true true true');
});
