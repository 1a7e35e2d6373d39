// Bad input to every public function: wrong types, out-of-range options, bad
// names. Each gets a ShmChanError with the right code, and nothing is created
// or written: no name appears in /dev/shm, and an existing segment keeps every
// byte (no message, no role, no counter).
import { afterEach, describe, expect, it } from 'vitest';
import { Channel, ShmChanError } from '../../dist/index.js';
import { cleanupChannels, killFixtures, uniqueName } from '../helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** Runs fn and expects a ShmChanError with this code, thrown or rejected. */
async function expectCode(code: string, fn: () => unknown): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(ShmChanError);
  expect((caught as ShmChanError).code).toBe(code);
}

describe('waiting', () => {
  it('two waits on one handle at once both work (they once failed with a bare native error)', async () => {
    const name = uniqueName('two-waits');
    const consumer = Channel.create<number>(name, { capacity: 4096 });
    const producer = Channel.open<number>(name);
    try {
      const both = Promise.all([consumer.receive({ timeout: 10_000 }), consumer.receive({ timeout: 10_000 })]);
      setTimeout(() => {
        producer.sendSync(1);
        producer.sendSync(2);
      }, 50);
      expect((await both).sort()).toEqual([1, 2]);
      await expectCode('ERR_TIMEOUT', () => Promise.all([consumer.receive({ timeout: 20 }), consumer.receive({ timeout: 20 })]));
    } finally {
      producer.close();
      consumer.close();
    }
  });

});
