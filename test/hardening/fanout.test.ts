// Corrupt cursors and words of the fan-out modes ('broadcast', 'mpmc'), written
// into a live channel the way another process could: every call afterwards
// returns valid data or throws ERR_CORRUPT, and nothing hangs or crashes.
import { afterEach, expect, it } from 'vitest';
import { Channel } from '../../dist/index.js';
import { cleanupChannels, uniqueName } from '../helpers';
import { HEADER, OFF, scribble, u32 } from './util';

afterEach(() => cleanupChannels());

/** Subscriber slot 0's position (cursor, then lost count) and owner word: see shmchan.h. */
const SLOT0 = { owner: 1024 + 52, cursor: 1024 + 56 };
const MAX_CONSUMERS = 640;
const RELEASE_LOCK = 648;

const outcome = (call: () => unknown) => {
  try {
    return { value: call() };
  } catch (error) {
    return { code: (error as { code?: string }).code };
  }
};

for (const overflow of ['block', 'overwrite'] as const) {
  it(`broadcast '${overflow}': a subscriber cursor that is not a position of the ring is ignored by producers, and the subscriber reads valid data or throws ERR_CORRUPT`, () => {
    for (const cursor of [0x12345673, 0x7ffffff8, 8 * 1024]) {
      const name = uniqueName(`bc-cursor-${overflow}`);
      const channel = Channel.create(name, { mode: 'broadcast', capacity: 4096, overflow });
      const subscriber = Channel.open(name);
      try {
        expect(subscriber.tryReceive()).toBeUndefined(); // subscribed, cursor at the tail (0)
        scribble(name, SLOT0.cursor, u32(cursor, 0));
        // producers never wait for, nor write through, a cursor outside [head, tail]
        for (let i = 0; i < 500; i++) expect(channel.trySend(i)).toBe(true);
        for (let i = 0; i < 600; i++) {
          const o = outcome(() => subscriber.tryReceive());
          if (o.code !== undefined) expect(['ERR_CORRUPT', 'ERR_LAGGED']).toContain(o.code);
          else if (o.value === undefined) break;
          else expect(typeof o.value).toBe('number');
        }
      } finally {
        subscriber.close();
        channel.close();
      }
    }
  });
}

it("broadcast 'overwrite': a lost count changed by another process is reported as lost, never as messages", () => {
  const name = uniqueName('bc-lost');
  const channel = Channel.create(name, { mode: 'broadcast', capacity: 4096, overflow: 'overwrite' });
  const subscriber = Channel.open(name);
  try {
    expect(subscriber.tryReceive()).toBeUndefined();
    channel.sendSync('a');
    scribble(name, SLOT0.cursor + 4, u32(7)); // lost, without a push
    const first = outcome(() => subscriber.tryReceive());
    expect([{ code: 'ERR_LAGGED' }, { value: 'a' }]).toContainEqual(first);
    expect(subscriber.stats().messagesLost).toBe(first.code === 'ERR_LAGGED' ? 7 : 0);
    channel.sendSync('b');
    const rest = [outcome(() => subscriber.tryReceive()), outcome(() => subscriber.tryReceive())].filter((o) => o.value !== undefined);
    expect(rest.map((o) => o.value)).toEqual(first.code === 'ERR_LAGGED' ? ['a', 'b'] : ['b']);
  } finally {
    subscriber.close();
    channel.close();
  }
});

it('mpmc: impossible head and release cursors throw ERR_CORRUPT; a forged lock or taken record blocks nobody', () => {
  const cases: [string, number, Buffer][] = [
    ['head ahead of the tail', OFF.head, u32(0x1000)],
    ['releasing outside head..tail', OFF.releasing, u32(0x77770)],
    ['head not a multiple of 8', OFF.head, u32(3)],
  ];
  for (const [label, offset, bytes] of cases) {
    const name = uniqueName('mpmc-cursor');
    const channel = Channel.create(name, { mode: 'mpmc', capacity: 4096 });
    const consumer = Channel.open(name);
    try {
      channel.sendSync('x');
      scribble(name, offset, bytes);
      expect(outcome(() => consumer.tryReceive()), label).toEqual({ code: 'ERR_CORRUPT' });
    } finally {
      consumer.close();
      channel.close();
    }
  }
  const name = uniqueName('mpmc-forged');
  const channel = Channel.create(name, { mode: 'mpmc', capacity: 4096 });
  const consumer = Channel.open(name);
  try {
    // a release lock held in the name of nobody, and a record "taken" by consumer slot 63, which nobody holds
    scribble(name, RELEASE_LOCK, u32(0x40000000 | (63 << 22) | 5));
    channel.sendSync('first');
    scribble(name, HEADER + 4, u32(0x40000000 | (63 << 22) | 9));
    for (let i = 0; i < 200; i++) channel.sendSync(i); // the first record stays "taken": no lap
    const got: unknown[] = [];
    while (got.length < 201) got.push(consumer.receiveSync({ timeout: 2000 }));
    expect(got).toContain('first'); // handed back from the dead "consumer"
    for (let i = 0; i < 1000; i++) {
      // laps: once the ring is full, a producer takes the lock over from nobody
      channel.sendSync(i, { timeout: 5000 });
      expect(consumer.receiveSync({ timeout: 5000 })).toBe(i);
    }
  } finally {
    consumer.close();
    channel.close();
  }
});

it('a consumer limit outside 1..64 in the header refuses new consumers with ERR_CORRUPT', () => {
  for (const mode of ['mpmc', 'broadcast'] as const) {
    const name = uniqueName(`max-consumers-${mode}`);
    const channel = Channel.create(name, { mode, capacity: 4096 });
    try {
      scribble(name, MAX_CONSUMERS, u32(0xffffffff));
      expect(outcome(() => channel.tryReceive())).toEqual({ code: 'ERR_CORRUPT' });
      expect(channel.trySend('still sent')).toBe(true);
    } finally {
      channel.close();
    }
  }
});

for (const overflow of ['block', 'overwrite'] as const) {
  it(`broadcast '${overflow}': a producer making room ignores a RELEASING that is not on a record boundary (it would read past the ring)`, () => {
    const name = uniqueName(`bc-releasing-${overflow}`);
    const channel = Channel.create<Buffer>(name, { mode: 'broadcast', capacity: 4096, overflow, codec: 'raw' });
    try {
      const message = (i: number) => Buffer.alloc(56, i); // 64-byte records: 64 fill the ring exactly
      for (let i = 0; i < 64; i++) expect(channel.trySend(message(i))).toBe(true);
      expect(channel.stats()).toMatchObject({ messagesSent: 64 });
      scribble(name, OFF.releasing, u32(4093)); // between head (0) and tail (4096), at the ring's last word
      expect(outcome(() => channel.trySend(message(64)))).toEqual({ value: true });
    } finally {
      channel.close();
    }
  });
}

it('mpmc: a consumer that finds the release lock held does not look at a head off a record boundary (it would read past the ring)', () => {
  const name = uniqueName('mpmc-odd-head');
  const channel = Channel.create(name, { mode: 'mpmc', capacity: 4096 });
  const consumer = Channel.open(name);
  try {
    channel.sendSync('x'); // the record at 0, the tail at 16
    scribble(name, RELEASE_LOCK, u32(0x40000000 | (63 << 22) | 5)); // held in the name of nobody
    scribble(name, OFF.head, u32(0xffffffff)); // one byte before the record: ring index 4095
    const got = outcome(() => consumer.tryReceive());
    expect([{ value: 'x' }, { code: 'ERR_CORRUPT' }]).toContainEqual(got);
  } finally {
    consumer.close();
    channel.close();
  }
});
