// Opening a channel while another process rewrites its header: the opener reads
// each header field once, validates that value and uses only it, so it gets a
// working channel of the true size or ERR_CORRUPT / ERR_INCOMPATIBLE, and never
// a ring that reaches past its mapping (issue 21, item 1). The hostile process is
// a small C program, built here.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { Channel } from '../../dist/index.js';
import { cleanupChannels, killFixtures, startFixture, sysvKeyOf, uniqueName } from '../helpers';
import { buildCHelper, startHostile } from './util';

const work = mkdtempSync(path.join(os.tmpdir(), 'shmchan-open-race-'));

afterEach(() => {
  killFixtures();
  cleanupChannels();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('System V: an opener racing a process that flips the segment-size word never trusts the flipped size', async () => {
  const flipper = buildCHelper('size-flipper', work);
  const name = uniqueName('size-flip');
  const channel = Channel.create(name, { backend: 'sysv', capacity: 4096 });
  const hostile = await startHostile(flipper, [String(sysvKeyOf(name))]);
  try {
    const opener = startFixture('open-repeatedly.mjs', [name, JSON.stringify({ backend: 'sysv' }), '10000', '4096']);
    const timer = setTimeout(() => opener.child.kill('SIGKILL'), 120_000);
    const { code, signal } = await opener.exited;
    clearTimeout(timer);
    expect({ code, signal, stderr: opener.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    const result = JSON.parse(opener.stdout().trim());
    expect(result.wrongCapacities).toEqual([]);
    expect(Object.keys(result.codes).filter((c) => c !== 'ERR_CORRUPT' && c !== 'ERR_INCOMPATIBLE')).toEqual([]);
    expect(result.opened).toBeGreaterThan(0);
  } finally {
    hostile.kill('SIGKILL');
    channel.close();
  }
}, 180_000);
