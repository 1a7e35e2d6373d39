import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeMessage } from './fixtures/messages.mjs';
import { backends, cleanupChannels, killFixtures, startFixture, uniqueName, until, using } from './helpers';
import { buildCHelper } from './hardening/util';
import { native } from '../dist/core/binding.js';
import * as layout from '../dist/core/layout.js';
import { channelInternals } from '../dist/core/internals.js';
import { Channel } from '../dist/index.js';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** Calls `asked` for each native sleep a channel's async waits ask for (its line and
 * longest length), and `ended` as each one ends. The addon's method is read-only:
 * it is shadowed on this one segment object. */
function watchSleeps(channel: Channel, on: { asked?: (which: number, ms: number) => void; ended?: () => void }): void {
  const segment = channel[channelInternals]().ring.segment;
  const waitAsync = segment.waitAsync.bind(segment);
  Object.defineProperty(segment, 'waitAsync', {
    value: (which: number, sequence: number, ms: number, done: (outcome: unknown) => void) => {
      on.asked?.(which, ms);
      return waitAsync(which, sequence, ms, (outcome: unknown) => {
        on.ended?.();
        done(outcome);
      });
    },
  });
}

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('keeps the event loop ticking while receive() waits for another process', async () => {
    const name = uniqueName('ticking');
    const channel = b.create(name);
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const sender = b.startFixture('send-after.mjs', [name, '300', '{"hello":"world"}']);
      const value = await channel.receive({ timeout: 30_000 });
      clearInterval(timer);
      expect(value).toEqual({ hello: 'world' });
      expect(ticks).toBeGreaterThan(5); // timers ran while we waited ~300 ms
      expect((await sender.exited).code).toBe(0);
    } finally {
      channel.close();
    }
  });

  it('a burst sent to a sleeping consumer pays one wake-up, not one per message', async () => {
    const name = uniqueName('one-wake');
    const channel = b.create(name);
    const consumer = b.startFixture('consumer.mjs', [name]);
    try {
      const i32: Int32Array = channel['ring'].i32;
      const waitersIndex = layout.OFF_DATA_WAITERS >> 2;
      await until(() => Atomics.load(i32, waitersIndex) > 0, 'the consumer never went to sleep');
      // Stopped while asleep (or just before it arms), it cannot withdraw: every
      // message below finds a sleeper announced. Each wake-up moves the sequence.
      process.kill(consumer.child.pid!, 'SIGSTOP');
      const before = Atomics.load(i32, layout.OFF_DATA_SEQ >> 2);
      for (let i = 0; i < 100; i++) expect(channel.trySend(makeMessage(i))).toBe(true);
      const moves = (Atomics.load(i32, layout.OFF_DATA_SEQ >> 2) - before) >>> 0;
      process.kill(consumer.child.pid!, 'SIGCONT');
      channel.end();
      expect((await consumer.exited).code).toBe(0);
      expect(JSON.parse(consumer.stdout())).toEqual({ received: 100, mismatches: 0, firstMismatch: null });
      expect(moves).toBeLessThanOrEqual(1);
    } finally {
      channel.close();
    }
  });

  it('a parked receiver sleeps up to a second at a time, not 100 ms: its deadline ends a sleep, a commit wakes it', async () => {
    const channel = b.create(uniqueName('parked'), { spinMicros: 0 });
    try {
      // every sleep the receive asks of the addon, and how long it may last
      const asked: number[] = [];
      watchSleeps(channel, {
        asked: (which, ms) => {
          if (which === layout.WAIT_DATA) asked.push(ms);
        },
      });
      await expect(channel.receive({ timeout: 2500 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      // 1000, 1000, then what is left; each wake-up of a parked process costs it CPU
      expect(asked[0]).toBe(1000);
      expect(Math.max(...asked)).toBe(1000);
      expect(asked.length).toBeLessThanOrEqual(4);
    } finally {
      channel.close();
    }
  });

  it('a receive with a timeout beside one without times out on time, though the two share one sleep', async () => {
    const name = uniqueName('joined');
    const channel = b.create(name, { spinMicros: 0 });
    try {
      // how many of the sleeps the addon carries out have ended
      let ended = 0;
      watchSleeps(channel, { ended: () => ended++ });
      const first = channel.receive(); // its sleep lasts up to a second
      await expect(channel.receive({ timeout: 100 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      // the second joined the first's sleep, and was woken for its timeout while that sleep went on
      expect(ended).toBe(0);
      const producer = b.open(name);
      try {
        producer.trySend('after');
        expect(await first).toBe('after');
      } finally {
        producer.close();
      }
    } finally {
      channel.close();
    }
  });

  it('times out: receive, receiveSync, and timeout 0 at once', async () => {
    const name = uniqueName('timeouts');
    const channel = b.create(name);
    try {
      await expect(channel.receive({ timeout: 50 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      expect(() => channel.receiveSync({ timeout: 50 })).toThrow(expect.objectContaining({ code: 'ERR_TIMEOUT' }));
      expect(() => channel.receiveSync({ timeout: 0 })).toThrow(expect.objectContaining({ code: 'ERR_TIMEOUT' }));
      await expect(channel.receive({ timeout: 0 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      // a timed-out receive keeps the consumer role, and the channel still works
      channel.sendSync('after');
      expect(await channel.receive({ timeout: 1000 })).toBe('after');
    } finally {
      channel.close();
    }
  });

  it('aborts a waiting receive and send with an AbortSignal, as AbortError', async () => {
    const name = uniqueName('abort');
    const channel = b.create(name, { capacity: 4096 });
    try {
      const controller = new AbortController();
      const pending = channel.receive({ signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await expect(pending).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      await expect(channel.receive({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORT_ERR' });

      while (channel.trySend('fill')) {}
      const sendController = new AbortController();
      const blocked = channel.send('one more', { signal: sendController.signal });
      setTimeout(() => sendController.abort(), 50);
      await expect(blocked).rejects.toMatchObject({ code: 'ABORT_ERR' });
      expect(channel.tryReceive()).toBe('fill'); // the channel still works after aborts
    } finally {
      channel.close();
    }
  });

  it('a wait answered while it spins adds no listener to its signal; one that sleeps listens until it ends', async () => {
    const name = uniqueName('abort-listen');
    const channel = b.create(name, { capacity: 4096, spinMicros: 1_000_000 });
    let sleeps = 0;
    watchSleeps(channel, { asked: () => sleeps++ });
    try {
      const controller = new AbortController();
      const { signal } = controller;
      const added = vi.spyOn(signal, 'addEventListener');
      // the message comes from another process, 300 ms after it opened the channel, while
      // the receive polls (up to 1 s); a machine too slow for that sleeps instead, and the
      // round is made again
      for (let round = 1; ; round++) {
        const sender = b.startFixture('send-after.mjs', [name, '300', `${round}`]);
        await sender.line('opened');
        sleeps = 0;
        added.mockClear();
        expect(await channel.receive({ signal })).toBe(round);
        await sender.exited;
        if (sleeps === 0) break;
        expect(round, 'a receive that polled for 1 s caught the message').toBeLessThan(5);
      }
      expect(added).not.toHaveBeenCalled();

      // a wait that sleeps at once (no polling) listens, and no longer once a message ended it
      const sleeper = b.create(uniqueName('abort-listen-sleeper'), { capacity: 4096, spinMicros: 0 });
      try {
        const sleeping = sleeper.receive({ signal });
        await until(() => added.mock.calls.length === 1, 'the sleeping receive listens to its signal');
        sleeper.trySend('later');
        expect(await sleeping).toBe('later');
        expect(getEventListeners(signal, 'abort')).toHaveLength(0);
        const aborted = sleeper.receive({ signal });
        await until(() => added.mock.calls.length === 2, 'the next sleeping receive listens');
        controller.abort();
        await expect(aborted).rejects.toMatchObject({ code: 'ABORT_ERR' });
      } finally {
        sleeper.close();
      }
    } finally {
      channel.close();
    }
  });

  it('applies backpressure: a send on a full ring waits until another process drains it', async () => {
    const name = uniqueName('backpressure');
    const channel = b.create(name, { capacity: 4096 });
    try {
      let sent = 0;
      while (channel.trySend({ n: sent })) sent++;
      expect(sent).toBeGreaterThan(100);
      expect(channel.trySend({ n: sent })).toBe(false);
      const pending = channel.send({ n: sent }, { timeout: 30_000 });
      let settled = false;
      pending.then(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(settled).toBe(false);
      const drained = await b.runFixture('drain.mjs', [name, String(sent + 1)]);
      await pending;
      expect(drained.values).toEqual(Array.from({ length: sent + 1 }, (_, n) => ({ n })));
    } finally {
      channel.close();
    }
  });

  it('rejects pending waits with ERR_CLOSED when the handle is closed', async () => {
    const name = uniqueName('close-pending');
    const channel = b.create(name);
    const pending = channel.receive();
    setTimeout(() => channel.close(), 20);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('ends the stream: everything sent before end() arrives, then the iterator finishes and receive throws ERR_ENDED', async () => {
    const name = uniqueName('end');
    const channel = b.create(name);
    try {
      for (let i = 0; i < 10; i++) channel.sendSync(i);
      channel.end();
      expect(() => channel.sendSync(10)).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
      const got: unknown[] = [];
      for await (const value of channel) got.push(value);
      expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await expect(channel.receive()).rejects.toMatchObject({ code: 'ERR_ENDED' });
      expect(() => channel.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
      expect(channel.stats().ended).toBe(true);
    } finally {
      channel.close();
    }
  });

  it('wakes a receiver waiting in another process when the channel ends', async () => {
    const name = uniqueName('end-wakes');
    const channel = b.create(name);
    try {
      const consumer = b.startFixture('consumer.mjs', [name]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      channel.end();
      expect((await consumer.exited).code).toBe(0);
      expect(JSON.parse(consumer.stdout())).toEqual({ received: 0, mismatches: 0, firstMismatch: null });
    } finally {
      channel.close();
    }
  });

  it('a receiver asleep when the creator sends, ends and closes at once still gets every message, then the end', async () => {
    for (let round = 0; round < 5; round++) {
      const name = uniqueName(`end-and-close-${round}`);
      const channel = b.create(name);
      const consumer = b.startFixture('consumer.mjs', [name]);
      while (channel.stats().consumerPid === null) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 100)); // let it fall asleep
      channel.sendSync(makeMessage(0));
      channel.end();
      channel.close(); // System V: removes the semaphore set the consumer sleeps on
      expect((await consumer.exited).code).toBe(0);
      expect(JSON.parse(consumer.stdout())).toEqual({ received: 1, mismatches: 0, firstMismatch: null });
    }
  });
});

describe('io_uring sleeps', () => {
  const mechanism = native.waitMechanism();

  // A kernel short of memory may refuse an io_uring_enter (EAGAIN, or EBUSY with
  // its completion queue overflowing). The sleeps it carried stayed queued in
  // the ring, and nothing handed them over again: the receiver never woke, and
  // its timeout, queued beside the sleep, never began either.
  it.skipIf(mechanism !== 'io_uring')('a sleep whose submission the kernel refused is submitted again: the receiver wakes for each message', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'shmchan-refuse-'));
    const shim = buildCHelper('refuse-uring-enter', work, ['-shared', '-fPIC', '-ldl']);
    // after what is preloaded already (npm run test:asan preloads the sanitizer's runtime, which must come first)
    const preload = [process.env.LD_PRELOAD, shim].filter((library) => library !== undefined && library !== '').join(' ');
    try {
      // the 1st enter is the first sleep; the 2nd the sleep after the first delivery, made
      // while the ring holds the re-sleeps of a delivery; the 3rd a sleep on its own
      for (const refused of [1, 2, 3]) {
        const name = uniqueName(`refused-${refused}`);
        const channel = Channel.create<number>(name);
        try {
          const receiver = startFixture('receive-each.mjs', [name, '3'], { env: { LD_PRELOAD: preload, SHMCHAN_REFUSE_ENTER: String(refused) } });
          await receiver.line('ready');
          for (let i = 0; i < 3; i++) {
            await new Promise((resolve) => setTimeout(resolve, 150)); // it is asleep by now
            channel.trySend(i);
            await until(() => receiver.stdout().includes(`got ${i}`), `the receiver gets message ${i} (io_uring_enter #${refused} refused)`);
          }
          expect((await receiver.exited).code).toBe(0);
          expect(receiver.stdout()).toBe('ready\ngot 0\ngot 1\ngot 2\n');
          expect(receiver.stderr()).toBe(`refused io_uring_enter #${refused}\n`);
        } finally {
          channel.close();
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
