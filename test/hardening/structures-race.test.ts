// A producer saving record structures while another process flips the sign of
// the table's length word: the producer reads the length once, checks it and
// writes only after it, so every send either works or is ERR_CORRUPT, never a
// write at a length it did not check (a negative offset: ERR_ENCODE from a
// RangeError before). The hostile process is a small C program, built here.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { Channel, ShmChanError } from '../../dist/index.js';
import { cleanupChannels, killFixtures, uniqueName } from '../helpers';
import { OFF, buildCHelper, startHostile } from './util';

const work = mkdtempSync(path.join(os.tmpdir(), 'shmchan-structures-race-'));

afterEach(() => {
  killFixtures();
  cleanupChannels();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('a producer whose structure table length is flipped meanwhile sends, or says ERR_CORRUPT', async () => {
  const flipper = buildCHelper('word-flipper', work);
  const outcomes: Record<string, number> = {};
  for (let round = 0; round < 5; round++) {
    const name = uniqueName('structures-flip');
    const channel = Channel.create<unknown>(name, { capacity: 65536, records: true });
    const hostile = await startHostile(flipper, [`/dev/shm/${name}`, String(OFF.structuresLength), '0x80000000']);
    try {
      // each new key list is one more entry for the table
      for (let i = 0; i < 300; i++) {
        let outcome: string;
        try {
          outcome = String(channel.trySend({ [`key${i}`]: i, [`other${i}`]: 'v' }));
        } catch (error) {
          outcome = error instanceof ShmChanError ? error.code : String(error);
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    } finally {
      hostile.kill('SIGKILL');
      channel.close();
    }
  }
  expect(Object.keys(outcomes).filter((o) => o !== 'true' && o !== 'ERR_CORRUPT')).toEqual([]);
  expect(outcomes.true).toBeGreaterThan(0);
}, 120_000);
