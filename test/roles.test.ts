import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('allows one consumer at a time: another process gets ERR_ROLE_TAKEN naming the channel and the holder', async () => {
    const name = uniqueName('one-consumer');
    const channel = b.create(name);
    try {
      expect(channel.tryReceive()).toBeUndefined();
      const other = await b.runFixture('try-open.mjs', [name, 'consumer']);
      expect(other.code).toBe('ERR_ROLE_TAKEN');
      expect(other.message).toContain(name);
      expect(other.message).toContain(String(process.pid));
      expect(channel.stats().consumerPid).toBe(process.pid);
    } finally {
      channel.close();
    }
  });

  it('allows one producer at a time in spsc mode, also between handles of one process', () => {
    const name = uniqueName('one-producer');
    const first = b.create(name, { unlinkOnClose: false });
    const second = b.open(name);
    try {
      expect(first.trySend(1)).toBe(true);
      expect(() => second.trySend(2)).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
      // roles are per handle: the second handle may consume while the first produces
      expect(second.tryReceive()).toBe(1);
      expect(() => first.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
      first.close();
      const third = b.open(name);
      expect(third.trySend(3)).toBe(true); // a closed handle's role is free again
      expect(second.tryReceive()).toBe(3);
      third.close();
    } finally {
      second.close();
      b.unlink(name);
    }
  });

  for (const role of ['consumer', 'producer'] as const) {
    it(`reclaims the ${role} role from a process killed with SIGKILL`, async () => {
      const name = uniqueName(`reclaim-${role}`);
      const channel = b.create(name);
      try {
        const holder = b.startFixture('holder.mjs', [name, role]);
        await holder.line('ready');
        const attempt = () => (role === 'consumer' ? channel.tryReceive() : channel.trySend('mine'));
        expect(attempt).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
        holder.child.kill('SIGKILL');
        await holder.exited;
        if (role === 'consumer') {
          expect(channel.tryReceive()).toBeUndefined();
          expect(channel.stats().consumerPid).toBe(process.pid);
        } else {
          expect(channel.trySend('mine')).toBe(true);
          const reader = b.open(name);
          // the dead producer's committed message survives, then ours
          expect(reader.tryReceive()).toBe('hello from the holder');
          expect(reader.tryReceive()).toBe('mine');
          reader.close();
        }
      } finally {
        channel.close();
      }
    });
  }

  it('a dead consumer is noticed: a blocked producer gets ERR_PEER_GONE, sync and async, and a new consumer gets the rest', async () => {
    for (const how of ['async', 'sync']) {
      const name = uniqueName(`peer-gone-${how}`);
      const channel = b.create(name, { capacity: 4096 });
      try {
        const consumer = b.startFixture('holder.mjs', [name, 'consumer']);
        await consumer.line('ready');
        const producer = b.startFixture('blocked-producer.mjs', [name, how]);
        const full = await producer.line('full');
        const sent = Number(full.split(' ')[1]);
        consumer.child.kill('SIGKILL');
        await producer.exited;
        const outcome = JSON.parse(producer.stdout().trim().split('\n').pop()!);
        expect(outcome.code).toBe('ERR_PEER_GONE');
        // nothing was lost: a new consumer receives every message still in the ring
        let received = 0;
        while (channel.tryReceive() !== undefined) received++;
        expect(received).toBe(sent);
      } finally {
        channel.close();
      }
    }
  });

  it('a new spsc producer continues after records its dead predecessor committed but did not publish, even once consumed', async () => {
    const name = uniqueName('unpublished-tail');
    const channel = b.create(name, { capacity: 4096 });
    const producer = b.open(name);
    try {
      producer.sendSync('one');
      producer.sendSync('two');
      expect(channel.tryReceive()).toBe('one');
      expect(channel.tryReceive()).toBe('two');
      producer.close();
      // As if the producer had died after committing 'two' but before publishing its
      // tail: put the stored tail (segment offset 128) back to the end of 'one' (16).
      await b.runFixture('scribble.mjs', [name, '128', '10000000']);
      const next = b.open(name);
      expect(next.trySend('three')).toBe(true);
      expect(channel.tryReceive()).toBe('three');
      next.close();
    } finally {
      channel.close();
    }
  });
});
