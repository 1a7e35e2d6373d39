import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, deadClaimHex, killFixtures, uniqueName, until, using } from './helpers';
import * as layout from '../dist/core/layout.js';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('delivers 4 producers × 50,000 messages exactly once and in per-producer order', async () => {
    const name = uniqueName('mpsc-4x50k');
    const channel = b.create(name, { mode: 'mpsc', capacity: 64 * 1024 });
    try {
      expect(channel.mode).toBe('mpsc');
      const consumer = b.startFixture('mpsc-consumer.mjs', [name]);
      const producers = [0, 1, 2, 3].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '50000']));
      expect(await Promise.all(producers)).toEqual([0, 1, 2, 3].map(() => ({ sent: 50_000 })));
      channel.end();
      expect((await consumer.exited).code).toBe(0);
      expect(JSON.parse(consumer.stdout())).toEqual({
        received: 200_000,
        perProducer: { 0: 50_000, 1: 50_000, 2: 50_000, 3: 50_000 },
        problems: [],
      });
      expect(channel.stats()).toMatchObject({ messagesSent: 200_000, messagesReceived: 200_000, used: 0 });
    } finally {
      channel.close();
    }
  });

  it('survives producers killed with SIGKILL at random moments, 20 times: nothing hangs, nothing committed is lost', async () => {
    for (let round = 0; round < 20; round++) {
      const name = uniqueName(`mpsc-kill-${round}`);
      const channel = b.create(name, { mode: 'mpsc', capacity: 16 * 1024 });
      try {
        const consumer = b.startFixture('mpsc-consumer.mjs', [name]);
        const victim = b.startFixture('mpsc-producer.mjs', [name, '0', '1000000']);
        const others = [1, 2].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '5000']));
        await victim.line('started');
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 60));
        victim.child.kill('SIGKILL');
        await victim.exited;
        expect(await Promise.all(others)).toEqual([{ sent: 5000 }, { sent: 5000 }]);
        channel.end();
        const { code } = await consumer.exited;
        // a consumer that failed printed no report: say what it said instead
        expect(consumer.stdout(), `the consumer exited with ${code}: ${consumer.stderr()}`).not.toBe('');
        const report = JSON.parse(consumer.stdout());
        expect(code).toBe(0);
        expect(report.problems).toEqual([]);
        expect(report.perProducer[1]).toBe(5000);
        expect(report.perProducer[2]).toBe(5000);
        // The victim's messages arrive as a gap-free prefix (checked by the consumer).
        // Every committed message arrived: a producer counts a message just after
        // committing it, so the killed one may have committed one more than it counted.
        const stats = channel.stats();
        expect(stats.messagesReceived).toBe(report.received);
        expect(report.received - stats.messagesSent).toBeGreaterThanOrEqual(0);
        expect(report.received - stats.messagesSent).toBeLessThanOrEqual(1);
      } finally {
        channel.close();
      }
    }
  });

  it("passes a dead producer's claim that never moved the tail, and moves the tail past it too", async () => {
    const name = uniqueName('mpsc-dead-claim-tail');
    const channel = b.create(name, { mode: 'mpsc', capacity: 4096 });
    try {
      // its claimant died before it moved the tail: the tail is still 0
      await b.runFixture('scribble.mjs', [name, '8192', deadClaimHex()]);
      // The consumer finds the claim dead and passes it before any producer meets it.
      const waiting = channel.receive({ timeout: 10_000 });
      const i32: Int32Array = channel['ring'].i32;
      const HEAD = layout.OFF_HEAD >> 2;
      const TAIL = layout.OFF_TAIL >> 2;
      await until(() => Atomics.load(i32, HEAD) === 64, 'the consumer never passed the dead claim');
      // a head past the tail would be a corrupt ring for every producer after
      expect(Atomics.load(i32, TAIL)).toBe(64);
      await b.runFixture('send-after.mjs', [name, '0', '"after the dead claim"']);
      expect(await waiting).toBe('after the dead claim');
      expect(channel.stats()).toMatchObject({ used: 0 });
    } finally {
      channel.close();
    }
  });

  it("skips a dead producer's unfinished claim within milliseconds and delivers what follows", async () => {
    const name = uniqueName('mpsc-dead-claim');
    const channel = b.create(name, { mode: 'mpsc', capacity: 4096 });
    try {
      // a claim of a process that is gone, and the tail moved past it
      await b.runFixture('scribble.mjs', [name, '8192', deadClaimHex()]);
      await b.runFixture('scribble.mjs', [name, '128', '40000000']); // tail := 64
      channel.sendSync('after the dead claim');
      expect(await channel.receive({ timeout: 10_000 })).toBe('after the dead claim');
      expect(channel.tryReceive()).toBeUndefined();
    } finally {
      channel.close();
    }
  });

  it('gives a blocked mpsc producer ERR_PEER_GONE when the consumer is killed, and a new consumer receives the rest', async () => {
    const name = uniqueName('mpsc-peer-gone');
    const channel = b.create(name, { mode: 'mpsc', capacity: 4096 });
    try {
      const consumer = b.startFixture('holder.mjs', [name, 'consumer']);
      await consumer.line('ready');
      const producer = b.startFixture('blocked-producer.mjs', [name, 'async']);
      const sent = Number((await producer.line('full')).split(' ')[1]);
      consumer.child.kill('SIGKILL');
      await producer.exited;
      expect(JSON.parse(producer.stdout().trim().split('\n').pop()!).code).toBe('ERR_PEER_GONE');
      let received = 0;
      while (channel.tryReceive() !== undefined) received++;
      expect(received).toBe(sent);
    } finally {
      channel.close();
    }
  });

  it('holds 64 producers at once; one more gets ERR_TOO_MANY_PRODUCERS, and a closed slot is reused', () => {
    const name = uniqueName('mpsc-64');
    const channel = b.create(name, { mode: 'mpsc', capacity: 1 << 20 });
    const handles = Array.from({ length: 64 }, () => b.open(name));
    try {
      handles.forEach((handle, i) => expect(handle.trySend(i)).toBe(true));
      expect(channel.stats().producers).toBe(64);
      expect(() => channel.trySend('one too many')).toThrow(expect.objectContaining({ code: 'ERR_TOO_MANY_PRODUCERS' }));
      handles.pop()!.close();
      expect(channel.trySend('now there is room')).toBe(true);
      const got = new Set<unknown>();
      for (let value = channel.tryReceive(); value !== undefined; value = channel.tryReceive()) got.add(value);
      expect(got.size).toBe(65);
    } finally {
      handles.forEach((handle) => handle.close());
      channel.close();
    }
  });

  it('ends: any producer may end the channel; the consumer drains what came before, then sees the end', async () => {
    const name = uniqueName('mpsc-end');
    const channel = b.create(name, { mode: 'mpsc' });
    const first = b.open(name);
    const second = b.open(name);
    try {
      first.sendSync('a1');
      second.sendSync('b1');
      second.end();
      expect(() => first.trySend('a2')).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
      const got: unknown[] = [];
      for await (const value of channel) got.push(value);
      expect(got).toEqual(['a1', 'b1']);
    } finally {
      first.close();
      second.close();
      channel.close();
    }
  });
});

// Claims may start at any 8-byte boundary, so the consumer must leave every byte
// it consumed at zero: records of 0 to 600 bytes (zeroed a word at a time up to
// 256 bytes, by fill above), through several laps of a 4 KiB ring with padding at
// each wrap. Read back from /dev/shm, so POSIX only.
it('posix: leaves every consumed byte of an mpsc ring at zero, small and large records, across wraps', () => {
  const { create, open } = using('posix');
  const name = uniqueName('mpsc-zeroed');
  const capacity = 4096;
  const channel = create<Uint8Array>(name, { mode: 'mpsc', codec: 'raw', capacity });
  const consumer = open<Uint8Array>(name, { codec: 'raw' });
  try {
    const ringIsZero = () => readFileSync(`/dev/shm/${name}`).subarray(8192, 8192 + capacity).every((byte) => byte === 0);
    let laps = 0;
    for (let size = 0; size <= 600; size += 7) {
      const message = Buffer.alloc(size, (size % 255) + 1);
      expect(channel.trySend(message)).toBe(true);
      expect(Buffer.from(consumer.tryReceive()!).equals(message)).toBe(true);
      expect(ringIsZero()).toBe(true);
      laps += size;
    }
    expect(laps).toBeGreaterThan(4 * capacity);
  } finally {
    consumer.close();
    channel.close();
  }
});
