import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, sleepingForRoom, until, using } from './helpers';
import { OFF, scribble, u32 } from './hardening/util';
import * as layout from '../dist/core/layout.js';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const report = (fixture: { stdout(): string }) => {
  const lines = fixture.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
};

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('4 subscribers × 50,000 messages: every subscriber gets the same sequence, each message written once', async () => {
    const name = uniqueName('bc-4x50k');
    const channel = b.create(name, { mode: 'broadcast', capacity: 64 * 1024 });
    try {
      expect(channel.mode).toBe('broadcast');
      const subscribers = [0, 1, 2, 3].map(() => b.startFixture('subscriber.mjs', [name, 'latest']));
      await Promise.all(subscribers.map((s) => s.line('subscribed')));
      expect(channel.stats().consumers).toBe(4);
      expect(await b.runFixture('mpsc-producer.mjs', [name, '0', '50000'])).toEqual({ sent: 50_000 });
      channel.end();
      const reports = [];
      for (const s of subscribers) {
        expect((await s.exited).code).toBe(0);
        reports.push(report(s));
      }
      for (const r of reports) expect(r).toMatchObject({ received: 50_000, lost: 0, first: { 0: 0 }, next: { 0: 50_000 }, problems: [] });
      expect(new Set(reports.map((r) => r.hash)).size).toBe(1);
      // written once: the ring counted 50,000 messages, not 200,000
      expect(channel.stats()).toMatchObject({ messagesSent: 50_000 });
    } finally {
      channel.close();
    }
  });

  it('3 producers × 3 subscribers: each subscriber gets every message, all in one order', async () => {
    const name = uniqueName('bc-3x3');
    const channel = b.create(name, { mode: 'broadcast', capacity: 16 * 1024 });
    try {
      const subscribers = [0, 1, 2].map(() => b.startFixture('subscriber.mjs', [name, 'latest']));
      await Promise.all(subscribers.map((s) => s.line('subscribed')));
      const sent = await Promise.all([0, 1, 2].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '20000'])));
      expect(sent).toEqual([0, 1, 2].map(() => ({ sent: 20_000 })));
      channel.end();
      const reports = [];
      for (const s of subscribers) {
        expect((await s.exited).code).toBe(0);
        reports.push(report(s));
      }
      for (const r of reports) expect(r).toMatchObject({ received: 60_000, lost: 0, next: { 0: 20_000, 1: 20_000, 2: 20_000 }, problems: [] });
      expect(new Set(reports.map((r) => r.hash)).size).toBe(1);
    } finally {
      channel.close();
    }
  });

  it("'block': a subscriber killed with SIGKILL is dropped and holds nobody back", async () => {
    const name = uniqueName('bc-kill');
    const channel = b.create(name, { mode: 'broadcast', capacity: 4096 });
    try {
      const live = b.startFixture('subscriber.mjs', [name, 'latest']);
      // this one reads 10 messages, then sleeps for ever: it would block the producer
      const victim = b.startFixture('subscriber.mjs', [name, 'latest', '10', '100000000']);
      await Promise.all([live.line('subscribed'), victim.line('subscribed')]);
      const producer = b.runFixture('mpsc-producer.mjs', [name, '0', '20000']);
      await new Promise((resolve) => setTimeout(resolve, 200));
      victim.child.kill('SIGKILL');
      await victim.exited;
      expect(await producer).toEqual({ sent: 20_000 });
      channel.end();
      expect((await live.exited).code).toBe(0);
      expect(report(live)).toMatchObject({ received: 20_000, lost: 0, problems: [] });
      expect(channel.stats().consumers).toBe(0);
    } finally {
      channel.close();
    }
  });

  it("'block': a producer asleep for room is woken by the read that makes room behind the slowest subscriber, not by each faster one", async () => {
    const name = uniqueName('bc-room-wake');
    const channel = b.create(name, { mode: 'broadcast', capacity: 16 * 1024 });
    const subscribers = [0, 1, 2].map(() => b.open<{ p: number; i: number; bytes: Buffer }>(name));
    try {
      for (const s of subscribers) expect(s.tryReceive()).toBeUndefined(); // subscribed
      const i32: Int32Array = channel['ring'].i32;
      const spaceSeq = () => Atomics.load(i32, layout.OFF_SPACE_SEQ >> 2);
      const producer = b.runFixture('mpsc-producer.mjs', [name, '0', '2000']);
      await until(() => sleepingForRoom(i32), 'the producer never went to sleep');
      const received: Array<Array<{ p: number; i: number; bytes: Buffer }>> = [[], [], []];
      const read = (n: number, count: number) => {
        for (let k = 0; k < count; k++) received[n].push(subscribers[n].tryReceive()!);
      };
      // the ring holds about 95 of these messages: 60 are more than half of it
      const before = spaceSeq();
      read(0, 60);
      read(1, 60);
      expect((spaceSeq() - before) >>> 0).toBe(0); // the third subscriber still holds the room
      read(2, 60);
      expect((spaceSeq() - before) >>> 0).toBeGreaterThan(0);
      for (let turn = 0; received.some((r) => r.length < 2000); turn++) {
        expect(turn).toBeLessThan(100_000); // the hang guard
        for (let n = 0; n < 3; n++) for (let m; (m = subscribers[n].tryReceive()) !== undefined; ) received[n].push(m);
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(await producer).toEqual({ sent: 2000 });
      for (const got of received)
        got.forEach(({ p, i, bytes }, n) => {
          if (p !== 0 || i !== n || !bytes.equals(Buffer.alloc((i * 7) % 300, i & 0xff))) expect({ n, p, i, bytes }).toEqual({ n, p: 0, i: n });
        });
    } finally {
      for (const s of subscribers) s.close();
      channel.close();
    }
  });

  it("'block': a subscriber that closes without reading is dropped at once", () => {
    const name = uniqueName('bc-close');
    const channel = b.create<number>(name, { mode: 'broadcast', capacity: 4096 });
    const idle = b.open<number>(name);
    const reader = b.open<number>(name);
    try {
      expect(idle.tryReceive()).toBeUndefined();
      expect(reader.tryReceive()).toBeUndefined();
      let sent = 0;
      while (channel.trySend(sent)) sent++; // full: the idle subscriber holds it
      expect(reader.tryReceive()).toBe(0);
      expect(channel.trySend(sent)).toBe(false);
      idle.close();
      expect(channel.stats().consumers).toBe(1);
      for (let i = 1; i <= 2000; i++) {
        if (!channel.trySend(sent)) throw new Error(`a closed subscriber still blocks producers (message ${sent})`);
        sent++;
        expect(reader.tryReceive()).toBe(i);
      }
    } finally {
      idle.close();
      reader.close();
      channel.close();
    }
  });

  it("'overwrite': a slow subscriber gets ERR_LAGGED with exact counts; received + lost = sent, in order", async () => {
    const name = uniqueName('bc-overwrite');
    const channel = b.create(name, { mode: 'broadcast', capacity: 4096, overflow: 'overwrite' });
    try {
      expect(channel.overflow).toBe('overwrite');
      const slow = b.startFixture('subscriber.mjs', [name, 'latest', '50', '5']);
      const fast = b.startFixture('subscriber.mjs', [name, 'latest']);
      await Promise.all([slow.line('subscribed'), fast.line('subscribed')]);
      // producers never wait, whoever reads slowly
      expect(await b.runFixture('mpsc-producer.mjs', [name, '0', '20000'])).toEqual({ sent: 20_000 });
      channel.end();
      for (const s of [slow, fast]) expect((await s.exited).code).toBe(0);
      const r = report(slow);
      expect(r.problems).toEqual([]);
      expect(r.lost).toBeGreaterThan(0);
      expect(r.received + r.lost).toBe(20_000);
      expect(r.messagesLost).toBe(r.lost);
      expect(r.next).toEqual({ 0: 20_000 }); // the last message always arrives
      const f = report(fast);
      expect(f.problems).toEqual([]);
      expect(f.received + f.lost).toBe(20_000);
    } finally {
      channel.close();
    }
  });

  it("from: 'oldest' also gets what is still in the ring, 'latest' only what comes after it subscribed", async () => {
    const name = uniqueName('bc-from');
    const channel = b.create<{ p: number; i: number; bytes: Buffer }>(name, { mode: 'broadcast', capacity: 64 * 1024 });
    try {
      const anchor = b.open(name, { from: 'oldest' }); // holds the early messages in the ring
      expect(anchor.tryReceive()).toBeUndefined();
      expect(await b.runFixture('mpsc-producer.mjs', [name, '0', '100'])).toEqual({ sent: 100 });
      const oldest = b.startFixture('subscriber.mjs', [name, 'oldest']);
      const latest = b.startFixture('subscriber.mjs', [name, 'latest']);
      await Promise.all([oldest.line('subscribed'), latest.line('subscribed')]);
      expect(await b.runFixture('mpsc-producer.mjs', [name, '1', '100'])).toEqual({ sent: 100 });
      channel.end();
      for (const s of [oldest, latest]) expect((await s.exited).code).toBe(0);
      expect(report(oldest)).toMatchObject({ received: 200, first: { 0: 0, 1: 0 }, next: { 0: 100, 1: 100 }, problems: [] });
      expect(report(latest)).toMatchObject({ received: 100, first: { 1: 0 }, next: { 1: 100 }, problems: [] });
      expect(report(latest).next[0]).toBeUndefined();
      anchor.close();
    } finally {
      channel.close();
    }
  });
});

// A producer that dies while it pushes subscribers ('overwrite') leaves the release
// lock held, RELEASING ahead of the head, and the records between still whole. Its
// state is written here as it would have left it (POSIX: through /dev/shm).
it("'overwrite': a producer that took over from one that died mid-push counts what the subscribers it had not pushed lost", () => {
  const b = using('posix');
  const name = uniqueName('bc-dead-push');
  const channel = b.create(name, { mode: 'broadcast', capacity: 4096, overflow: 'overwrite', codec: 'raw' });
  const subscriber = b.open(name, { codec: 'raw' });
  const message = (i: number) => {
    const bytes = Buffer.alloc(8, i & 0xff); // a 16-byte record each
    bytes.writeUInt16BE(i, 0);
    return bytes;
  };
  try {
    expect(subscriber.tryReceive()).toBeUndefined(); // subscribed at the tail (0)
    for (let i = 0; i < 200; i++) expect(channel.trySend(message(i))).toBe(true);
    // died after RELEASING = 100 records on, before it pushed the subscriber (at 0)
    const deadConsumerMarker = 0x40000000 | (63 << 22) | 1;
    scribble(name, OFF.releasing, u32(1600));
    scribble(name, 648, u32(deadConsumerMarker)); // the release lock
    for (let i = 200; i < 300; i++) expect(channel.trySend(message(i))).toBe(true);
    const received: number[] = [];
    for (;;) {
      let value: Buffer | undefined;
      try {
        value = subscriber.tryReceive() as Buffer | undefined;
      } catch (error) {
        expect((error as { code?: string }).code).toBe('ERR_LAGGED');
        continue;
      }
      if (value === undefined) break;
      const i = value.readUInt16BE(0);
      expect(value).toEqual(message(i));
      received.push(i);
    }
    const lost = subscriber.stats().messagesLost;
    expect(received.length).toBeGreaterThan(0);
    expect(received).toEqual(Array.from({ length: received.length }, (_, n) => 300 - received.length + n));
    expect(lost + received.length).toBe(300);
  } finally {
    subscriber.close();
    channel.close();
  }
});

// Subscribers hold the release lock (in their slot's name) while they turn a dead
// producer's claim into padding. One killed right then leaves the lock in a name
// that the next subscriber in that slot makes look alive again.
it("'overwrite': a release lock left in a subscriber slot's name is freed when a new subscriber takes the slot", () => {
  const b = using('posix');
  const name = uniqueName('bc-stale-lock');
  const channel = b.create(name, { mode: 'broadcast', capacity: 4096, overflow: 'overwrite', codec: 'raw' });
  scribble(name, 648, u32(0x40000000)); // the release lock, in the name of consumer slot 0
  const subscriber = b.open(name, { codec: 'raw' });
  try {
    expect(subscriber.tryReceive()).toBeUndefined(); // subscribed, in slot 0
    // 'overwrite' producers release to make room: 1000 16-byte records lap a 4 KiB ring
    for (let i = 0; i < 1000; i++) expect(channel.trySend(Buffer.alloc(8, i & 0xff))).toBe(true);
  } finally {
    subscriber.close();
    channel.close();
  }
});
