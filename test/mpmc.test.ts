import { afterEach, describe, expect, it } from 'vitest';
import { channelInternals } from '../dist/core/internals.js';
import type { MpmcReader } from '../dist/core/mpmc.js';
import { backends, cleanupChannels, killFixtures, uniqueName, using, type Fixture } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** The "p:i" lines a worker wrote, one per message its receive returned. */
const taken = (worker: Fixture) =>
  worker
    .stdout()
    .split('\n')
    .filter((line) => /^\d+:\d+$/.test(line));

const summary = (worker: Fixture) => {
  const lines = worker.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
};

/** Only to turn a hang into a failure: under the sanitizers on a loaded machine
 * these multi-process tests take several times their usual length. */
const HEAVY_TIMEOUT_MS = 360_000;

/** Waits for a worker and checks it ended well, showing its stderr when it did not. */
async function expectExitedCleanly(worker: Fixture): Promise<void> {
  const { code, signal } = await worker.exited;
  expect({ code, signal }, `worker stderr:\n${worker.stderr()}`).toEqual({ code: 0, signal: null });
}

/** Every message of producers first..producers-1, `count` each, exactly once among the lines. */
function expectExactlyOnce(lines: string[], producers: number, count: number, first = 0): void {
  const seen = new Map<string, number>();
  for (const line of lines) seen.set(line, (seen.get(line) ?? 0) + 1);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([line]) => line);
  expect(duplicates).toEqual([]);
  const missing: string[] = [];
  for (let p = first; p < producers; p++) for (let i = 0; i < count; i++) if (!seen.has(`${p}:${i}`)) missing.push(`${p}:${i}`);
  expect(missing.slice(0, 10)).toEqual([]);
  expect(lines.length).toBe((producers - first) * count);
}

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('4 producers × 4 consumers: every message returned exactly once, every byte checked', async () => {
    const name = uniqueName('mpmc-4x4');
    const channel = b.create(name, { mode: 'mpmc', capacity: 32 * 1024 });
    try {
      expect(channel.mode).toBe('mpmc');
      const workers = [0, 1, 2, 3].map(() => b.startFixture('worker.mjs', [name]));
      await Promise.all(workers.map((w) => w.line('started')));
      const sent = await Promise.all([0, 1, 2, 3].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '20000'])));
      expect(sent).toEqual([0, 1, 2, 3].map(() => ({ sent: 20_000 })));
      channel.end();
      for (const w of workers) {
        await expectExitedCleanly(w);
        expect(summary(w).problems).toEqual([]);
      }
      expectExactlyOnce(workers.flatMap(taken), 4, 20_000);
      // each consumer sees each producer's messages in send order
      for (const w of workers)
        for (const p of [0, 1, 2, 3]) {
          const seq = taken(w).filter((t) => t.startsWith(`${p}:`)).map((t) => Number(t.split(':')[1]));
          expect(seq.findIndex((i, n) => n > 0 && i <= seq[n - 1]), `worker ${workers.indexOf(w)}, producer ${p}`).toBe(-1);
        }
      expect(channel.stats()).toMatchObject({ messagesSent: 80_000, messagesReceived: 80_000, used: 0 });
    } finally {
      channel.close();
    }
  }, HEAVY_TIMEOUT_MS);

  it('10 consumers killed between taking a record and returning it: their messages go to others, nothing lost or doubled', async () => {
    const name = uniqueName('mpmc-kills');
    const channel = b.create<{ p: number; i: number; bytes: Buffer }>(name, { mode: 'mpmc', capacity: 8 * 1024 });
    try {
      const workers = [1, 2].map(() => b.startFixture('worker.mjs', [name]));
      await Promise.all(workers.map((w) => w.line('started')));
      const producers = [1, 2].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '5000']));
      // this process is producer 0: it sends until every victim has died, so each
      // victim gets as many messages as it needs to reach the one it dies on
      let victimsDone = false;
      let sent = 0;
      const sending = (async () => {
        while (!victimsDone || sent < 5000) {
          await channel.send({ p: 0, i: sent, bytes: Buffer.alloc((sent * 7) % 300, sent & 0xff) });
          sent++;
        }
      })();
      const victims: Fixture[] = [];
      for (let kill = 0; kill < 10; kill++) {
        const victim = b.startFixture('worker.mjs', [name, String(1 + Math.floor(Math.random() * 200))]);
        victims.push(victim);
        expect((await victim.exited).signal, `victim stderr:\n${victim.stderr()}`).toBe('SIGKILL');
      }
      victimsDone = true;
      await sending;
      expect(await Promise.all(producers)).toEqual([1, 2].map(() => ({ sent: 5000 })));
      channel.end();
      for (const w of workers) {
        await expectExitedCleanly(w);
        expect(summary(w).problems).toEqual([]);
      }
      const lines = [...workers, ...victims].flatMap(taken);
      const others = lines.filter((line) => !line.startsWith('0:'));
      expectExactlyOnce(others, 3, 5000, 1);
      expectExactlyOnce(lines.filter((line) => line.startsWith('0:')), 1, sent);
    } finally {
      channel.close();
    }
  }, HEAVY_TIMEOUT_MS);

  it('a 65th consumer gets ERR_TOO_MANY_CONSUMERS', () => {
    const name = uniqueName('mpmc-65');
    const channel = b.create(name, { mode: 'mpmc', capacity: 4096 });
    const consumers = Array.from({ length: 64 }, () => b.open(name));
    try {
      for (const c of consumers) expect(c.tryReceive()).toBeUndefined();
      expect(channel.stats().consumers).toBe(64);
      expect(() => channel.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_TOO_MANY_CONSUMERS' }));
      consumers[0].close();
      expect(channel.tryReceive()).toBeUndefined(); // a slot is free again
    } finally {
      for (const c of consumers) c.close();
      channel.close();
    }
  });
  it("a record consumed with its release deferred (a service worker's) is passed by the next release: another consumer's, or a producer's short of room", () => {
    const name = uniqueName('mpmc-deferred');
    const producer = b.create<Buffer>(name, { mode: 'mpmc', capacity: 4096, codec: 'raw' });
    const worker = b.open<Buffer>(name, { codec: 'raw' });
    const other = b.open<Buffer>(name, { codec: 'raw' });
    try {
      const reader = worker[channelInternals]().consumer() as MpmcReader;
      reader.deferRelease = true;
      const message = (n: number) => Buffer.alloc(1000, n);
      expect(producer.trySend(message(1))).toBe(true);
      expect(producer.trySend(message(2))).toBe(true);
      expect(worker.tryReceive()).toEqual(message(1));
      // consumed, not yet released: still counted as used, not as received
      expect(producer.stats()).toMatchObject({ messagesReceived: 0, used: 2 * 1008 });
      expect(other.tryReceive()).toEqual(message(2));
      expect(producer.stats()).toMatchObject({ messagesReceived: 2, used: 0 });

      // a full ring whose first record waits for its release: the producer releases it
      let sent = 0;
      while (producer.trySend(message(3 + sent))) sent++;
      expect(sent).toBe(4);
      expect(worker.tryReceive()).toEqual(message(3));
      expect(producer.stats().messagesReceived).toBe(2);
      expect(producer.trySend(message(7))).toBe(true);
      expect(producer.stats().messagesReceived).toBe(3);
      // finishRelease is a no-op now that nothing is due; the worker's next read releases what it took
      reader.finishRelease();
      expect(worker.tryReceive()).toEqual(message(4));
      expect(worker.tryReceive()).toEqual(message(5));
      expect(producer.stats().messagesReceived).toBe(4);
      reader.finishRelease();
      expect(producer.stats().messagesReceived).toBe(5);
      for (const n of [6, 7]) expect(other.tryReceive()).toEqual(message(n));
      expect(worker.tryReceive()).toBeUndefined();
      expect(producer.stats()).toMatchObject({ messagesReceived: 7, used: 0 });
    } finally {
      other.close();
      worker.close();
      producer.close();
    }
  });
});
