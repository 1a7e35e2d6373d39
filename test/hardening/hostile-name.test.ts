// A hostile header's name field reaches error messages only escaped: a process
// with write access to a System V segment can put terminal escape sequences in
// it, and ERR_CHANNEL_EXISTS quotes the channel that holds a key (issue 21, item 8).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { Channel, ShmChanError } from '../../dist/index.js';
import { cleanupChannels, killFixtures, sysvKeyOf, trackKey, uniqueName } from '../helpers';
import { buildCHelper } from './util';

const work = mkdtempSync(path.join(os.tmpdir(), 'shmchan-hostile-name-'));
const OFF_NAME = 768;

afterEach(() => {
  killFixtures();
  cleanupChannels();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

it("ERR_CHANNEL_EXISTS escapes the non-printable bytes of the holder's name field", () => {
  const poke = buildCHelper('sysv-poke', work);
  const holder = uniqueName('holder');
  const key = trackKey(sysvKeyOf(holder));
  const channel = Channel.create(holder, { backend: 'sysv', capacity: 4096 });
  try {
    const forged = Buffer.concat([Buffer.from('evil\x1b]0;owned\x07\x1b[31mred\r\n\x9b2J\xff'), Buffer.from([0])]);
    execFileSync(poke, [String(key), String(OFF_NAME), forged.toString('hex')]);
    let caught: unknown;
    try {
      Channel.create(uniqueName('other'), { backend: 'sysv', key, capacity: 4096 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ShmChanError);
    const { code, message } = caught as ShmChanError;
    expect(code).toBe('ERR_CHANNEL_EXISTS');
    expect(message).toContain('evil');
    expect(message).not.toMatch(/[\x00-\x1f\x7f-\x9f\ufffd]/);
    expect(message).toContain('\\x1b');
  } finally {
    channel.close();
  }
});
