// Targeted corruption: one impossible value at a time, each written into a live
// channel by another process, where it once crashed, hung or misled shmchan.
// Every call afterwards must return valid data or throw ERR_CORRUPT (or a code
// listed in corruption.test.ts), and the process must live.
import { truncateSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { Channel } from '../../dist/index.js';
import { cleanupChannels, killFixtures, startFixture, uniqueName } from '../helpers';
import { HEADER, OFF, callsAfterCorruption, scribble, u32 } from './util';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

it('never indexes memory with a capacity changed under a live handle', async () => {
  for (const mode of ['spsc', 'mpsc'] as const) {
    const name = uniqueName(`capacity-${mode}`);
    const channel = Channel.create(name, { capacity: 4096, mode });
    try {
      const outcomes = await callsAfterCorruption(
        name,
        () => {
          scribble(name, OFF.capacity, u32(1 << 30));
          // cursors far beyond the real ring: with the header's capacity they look fine
          scribble(name, OFF.tail, u32(0x3ff00000));
          scribble(name, OFF.head, u32(0x3ff00000));
          scribble(name, OFF.releasing, u32(0x3ff00100));
        },
        [['trySend', 'x'], ['tryReceive'], ['stats']],
      );
      // the cursors are consistent with each other, so the channel still works,
      // on the ring size it was opened with
      expect(outcomes[0]).toEqual({ value: true });
      expect(outcomes[1]).toEqual({ value: 'x' });
      expect(outcomes[2].value).toMatchObject({ capacity: 4096 });
    } finally {
      channel.close();
    }
  }
});

it('refuses a record length that rounds up past 2^32 when a producer takes over (it once looped forever)', async () => {
  const name = uniqueName('huge-length');
  const channel = Channel.create(name, { capacity: 4096 });
  try {
    const outcomes = await callsAfterCorruption(name, () => scribble(name, HEADER, u32(0xfffffff9, 1)), [['trySend', 'x']]);
    expect(outcomes).toEqual([expect.objectContaining({ code: 'ERR_CORRUPT' })]);
  } finally {
    channel.close();
  }
});

it('refuses padding at ring offset 0 (the spsc consumer once looped on it forever)', async () => {
  const name = uniqueName('padding-at-0');
  const channel = Channel.create(name, { capacity: 4096 });
  try {
    const outcomes = await callsAfterCorruption(name, () => scribble(name, HEADER, u32(4096, 2)), [
      ['tryReceive'],
      ['receiveSync', { timeout: 50 }],
      ['receive', { timeout: 50 }],
    ]);
    expect(outcomes.map((o) => o.code)).toEqual(['ERR_CORRUPT', 'ERR_CORRUPT', 'ERR_CORRUPT']);
  } finally {
    channel.close();
  }
});

/** A claim marker: bit 31, the producer slot in bits 22-27, the slot's generation below. */
const marker = (slot: number, generation: number) => (0x80000000 | (slot << 22) | generation) >>> 0;

it('an mpsc producer facing a stuck claim of a live process reports no room instead of spinning for ever', async () => {
  const name = uniqueName('stuck-claim');
  const channel = Channel.create(name, { capacity: 4096, mode: 'mpsc' });
  try {
    expect(channel.trySend('first')).toBe(true); // this process now holds producer slot 0
    const tail = channel.stats().used;
    const outcomes = await callsAfterCorruption(
      name,
      // at the tail: a claim by slot 0 in generation 1 (this live handle, the slot's
      // first holder) that never got its length
      () => scribble(name, HEADER + tail, u32(0, marker(0, 1))),
      [['trySend', 'x'], ['sendSync', 'x', { timeout: 50 }], ['send', 'x', { timeout: 50 }]],
    );
    expect(outcomes.map((o) => o.value ?? o.code)).toEqual([false, 'ERR_TIMEOUT', 'ERR_TIMEOUT']);
  } finally {
    channel.close();
  }
});

it("skips a dead producer's unfinished claim of an empty raw message (once reported as corrupt)", async () => {
  const name = uniqueName('empty-claim');
  const channel = Channel.create<Uint8Array>(name, { capacity: 4096, mode: 'mpsc', codec: 'raw' });
  try {
    const outcomes = await callsAfterCorruption(
      name,
      () => {
        // a claim of 8 bytes (a record with no payload) by a producer that is gone
        scribble(name, HEADER, u32(-8, marker(5, 4_000_000)));
        scribble(name, OFF.tail, u32(8));
        channel.sendSync(Buffer.from('after'));
      },
      [['receiveSync', { timeout: 10_000 }]],
    );
    expect(outcomes).toEqual([{ value: 'after' }]);
  } finally {
    channel.close();
  }
});

it('an mpsc consumer reports a hole before the tail, or a head past the tail, instead of waiting for ever', async () => {
  const hole = uniqueName('hole');
  const channel = Channel.create(hole, { capacity: 4096, mode: 'mpsc' });
  try {
    channel.sendSync('lost');
    channel.sendSync('stuck behind it');
    const outcomes = await callsAfterCorruption(hole, () => scribble(hole, HEADER, u32(0, 0)), [['receive']]);
    expect(outcomes).toEqual([expect.objectContaining({ code: 'ERR_CORRUPT' })]);
  } finally {
    channel.close();
  }
  // A consumer that found the ring empty reads the tail at an empty header only now
  // and then, and before it sleeps: a wait that sleeps at once (no spin) still tells
  // the hole from an empty ring, well before its timeout, and so does a run of tryReceive calls.
  const unspun = uniqueName('hole-unspun');
  const quiet = Channel.create(unspun, { capacity: 4096, mode: 'mpsc' });
  try {
    const corrupt = () => {
      quiet.sendSync('lost');
      quiet.sendSync('stuck behind it');
      scribble(unspun, HEADER, u32(0, 0));
    };
    const tries = Array.from({ length: 300 }, () => ['tryReceive']);
    const outcomes = await callsAfterCorruption(unspun, corrupt, [['receive', { timeout: 2000 }], ...tries], { spinMicros: 0 }, undefined, [['tryReceive']]);
    expect(outcomes[0]).toEqual(expect.objectContaining({ code: 'ERR_CORRUPT' }));
    expect(outcomes.slice(1).some((o) => o.code === 'ERR_CORRUPT')).toBe(true);
    expect(outcomes.slice(1).every((o) => o.code === 'ERR_CORRUPT' || (o.value === undefined && o.code === undefined))).toBe(true);
  } finally {
    quiet.close();
  }
  const ahead = uniqueName('ahead');
  const ended = Channel.create(ahead, { capacity: 4096, mode: 'mpsc' });
  try {
    ended.end();
    // the iterator waited for a tail that could never reach the head
    const outcomes = await callsAfterCorruption(ahead, () => scribble(ahead, OFF.head, u32(64, 64)), [['receive']]);
    expect(outcomes).toEqual([expect.objectContaining({ code: 'ERR_CORRUPT' })]);
  } finally {
    ended.close();
  }
});

it('survives a segment truncated by another process: calls report ERR_CORRUPT (SIGBUS killed it before)', async () => {
  const calls = [
    ['tryReceive'],
    ['receiveSync', { timeout: 50 }],
    ['receive', { timeout: 50 }],
    ['open', {}],
    ['trySend', 'x'],
    ['sendSync', 'x', { timeout: 50 }],
    ['send', 'x', { timeout: 50 }],
    ['stats'],
    ['end'],
  ];
  for (const [mode, size] of [
    ['spsc', 0],
    ['spsc', 4096], // inside the header
    ['mpsc', HEADER], // the whole ring
    ['spsc', HEADER + 1000], // inside the ring: pages before the new end still work
    ['mpsc', HEADER + 5000],
  ] as const) {
    const name = uniqueName(`truncated-${mode}-${size}`);
    const channel = Channel.create(name, { capacity: 16384, mode });
    try {
      const outcomes = await callsAfterCorruption(name, () => truncateSync(`/dev/shm/${name}`, size), calls);
      // a reopen finds no complete header and waits for one, in vain; or it finds
      // the segment shorter than its header says
      const reopen = size < HEADER ? 'ERR_TIMEOUT' : 'ERR_CORRUPT';
      if (size <= HEADER) {
        expect(outcomes.map((o) => o.code)).toEqual(['ERR_CORRUPT', 'ERR_CORRUPT', 'ERR_CORRUPT', reopen, ...Array(5).fill('ERR_CORRUPT')]);
      } else {
        expect(outcomes[3].code).toBe(reopen);
        for (const outcome of outcomes) if (outcome.code !== undefined) expect(['ERR_CORRUPT', 'ERR_TIMEOUT']).toContain(outcome.code);
      }
    } finally {
      channel.close();
    }
  }
});

it('a consumer waiting in receive() when the segment is truncated gets ERR_CORRUPT', async () => {
  const name = uniqueName('truncated-waiting');
  const channel = Channel.create(name, { capacity: 16384 });
  try {
    const waiter = startFixture('calls.mjs', [name, '{}', '["receive", {"timeout": 60000}]']);
    await waiter.line('opened');
    waiter.child.stdin!.end('go\n');
    // the receive is asleep on the futex in the segment once the consumer role shows
    while (channel.stats().consumerPid === null) await new Promise((resolve) => setTimeout(resolve, 10));
    truncateSync(`/dev/shm/${name}`, 0);
    // the creator's own mapping faults too, and reads as zeros from now on
    expect(() => channel.trySend('x')).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT' }));
    const { code, signal } = await waiter.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(JSON.parse(waiter.stdout().trim().split('\n').pop()!)).toEqual([expect.objectContaining({ code: 'ERR_CORRUPT' })]);
  } finally {
    channel.close();
  }
});

it('a live handle whose magic is overwritten reports ERR_CORRUPT; a new opener gets ERR_INCOMPATIBLE', async () => {
  const name = uniqueName('magic');
  const channel = Channel.create(name, { capacity: 4096 });
  try {
    channel.sendSync('before');
    const outcomes = await callsAfterCorruption(name, () => scribble(name, OFF.magic, u32(0xdeadbeef)), [
      ['tryReceive'],
      ['trySend', 'x'],
      ['open', {}],
    ]);
    expect(outcomes.map((o) => o.code)).toEqual(['ERR_CORRUPT', 'ERR_CORRUPT', 'ERR_INCOMPATIBLE']);
  } finally {
    channel.close();
  }
});

it('a relaying consumer refuses forged padding that covers the whole ring (its peek once looped at 100% CPU)', async () => {
  for (const mode of ['spsc', 'mpsc'] as const) {
    const name = uniqueName(`relay-padding-${mode}`);
    const channel = Channel.create(name, { capacity: 4096, mode });
    try {
      const outcomes = await callsAfterCorruption(name, () => scribble(name, HEADER, u32(4096, 2)), [['relayNext'], ['relayNext']]);
      expect(outcomes).toEqual([expect.objectContaining({ code: 'ERR_CORRUPT' }), expect.objectContaining({ code: 'ERR_CORRUPT' })]);
    } finally {
      channel.close();
    }
  }
});

it('a relaying mpsc consumer takes an unfinished claim of an empty message for what it is, not for corruption', async () => {
  const name = uniqueName('relay-empty-claim');
  const channel = Channel.create(name, { capacity: 4096, mode: 'mpsc' });
  try {
    // a claim of one record header (8 bytes: an empty message) by slot 5, pid 12345,
    // which holds no slot: a producer that died between its claim and its commit
    const marker = 0x80000000 | (5 << 22) | 12345;
    const outcomes = await callsAfterCorruption(
      name,
      () => {
        scribble(name, HEADER, u32(-8, marker));
        scribble(name, OFF.tail, u32(8));
      },
      [['relayNext'], ['relayNext']],
    );
    expect(outcomes).toEqual([{ value: 'empty' }, { value: 'empty' }]);
  } finally {
    channel.close();
  }
});

it('opening a records channel whose structure table length is forged is ERR_CORRUPT (a bare internal error escaped before)', async () => {
  const name = uniqueName('forged-structures');
  const channel = Channel.create(name, { capacity: 4096, records: true });
  try {
    const outcomes = await callsAfterCorruption(name, () => scribble(name, OFF.structuresLength, u32(-1)), [['open', {}]]);
    expect(outcomes.map((o) => o.code)).toEqual(['ERR_CORRUPT']);
  } finally {
    channel.close();
  }
});

it("claims roles by the mode it validated at open, not by a mode word rewritten since (a second spsc consumer once got in)", () => {
  const name = uniqueName('mode-flip');
  const creator = Channel.create(name, { capacity: 4096 });
  const first = Channel.open(name);
  const second = Channel.open(name);
  try {
    expect(first.tryReceive()).toBeUndefined(); // the consumer role
    scribble(name, 12 /* OFF_MODE */, u32(3 /* MODE_MPMC: consumers claim slots of their own */));
    expect(() => second.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
    creator.trySend('only once');
    expect(first.tryReceive()).toBe('only once');
  } finally {
    for (const channel of [second, first, creator]) channel.close();
  }
});
