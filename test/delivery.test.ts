import { isDeepStrictEqual } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { makeMessage } from './fixtures/messages.mjs';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('delivers 100,000 mixed msgpack messages exactly once and in order through a 64 KiB ring between two processes', async () => {
    const name = uniqueName('mixed');
    const channel = b.create(name, { capacity: 64 * 1024 });
    try {
      const [received, sent] = await Promise.all([
        b.runFixture('consumer.mjs', [name]),
        b.runFixture('producer.mjs', [name, '100000']),
      ]);
      expect(sent).toEqual({ sent: 100_000 });
      expect(received).toEqual({ received: 100_000, mismatches: 0, firstMismatch: null });
      const stats = channel.stats();
      expect(stats.messagesSent).toBe(100_000);
      expect(stats.messagesReceived).toBe(100_000);
      expect(stats.bytesReceived).toBe(stats.bytesSent);
      expect(stats.bytesSent).toBeGreaterThan(500 * 64 * 1024); // the ring wrapped hundreds of times
      expect(stats.used).toBe(0);
      expect(stats.ended).toBe(true);
    } finally {
      channel.close();
    }
  });

  it('delivers to this process what another process sends, with receiveSync and the async iterator', async () => {
    const name = uniqueName('to-test');
    const channel = b.create(name, { capacity: 16 * 1024 });
    try {
      const producer = b.startFixture('producer.mjs', [name, '3000']);
      for (let i = 0; i < 1000; i++) expect(isDeepStrictEqual(channel.receiveSync({ timeout: 30_000 }), makeMessage(i))).toBe(true);
      let i = 1000;
      for await (const message of channel) expect(isDeepStrictEqual(message, makeMessage(i++))).toBe(true);
      expect(i).toBe(3000);
      expect((await producer.exited).code).toBe(0);
    } finally {
      channel.close();
    }
  });

  it("carries 'raw' messages byte for byte, including empty ones and ones of exactly maxMessageSize", () => {
    const name = uniqueName('raw');
    const producer = b.create<Uint8Array>(name, { capacity: 4096, codec: 'raw', maxMessageSize: 1000 });
    const consumer = b.open<Uint8Array>(name);
    try {
      expect(consumer.maxMessageSize).toBe(1000);
      for (let round = 0; round < 200; round++) {
        const sizes = [0, 1, 7, 8, 9, 999, 1000];
        const size = sizes[round % sizes.length];
        const bytes = Buffer.alloc(size, round);
        expect(producer.trySend(bytes)).toBe(true);
        const got = consumer.tryReceive()!;
        expect(Buffer.isBuffer(got)).toBe(true);
        expect(Buffer.compare(got, bytes)).toBe(0);
      }
    } finally {
      consumer.close();
      producer.close();
    }
  });

  // Small received byte arrays come from Node's Buffer pool, not from a fresh
  // ArrayBuffer each: they must still be copies that the ring's later laps leave alone.
  it('hands out byte arrays (raw messages, msgpack bin values) that keep their bytes after the ring has wrapped over them', () => {
    const sizes = [0, 1, 63, 64, 65, 100, 139, 140, 500, 1000];
    const bytesOf = (round: number, size: number) => Buffer.alloc(size, (round * 7 + size) & 0xff);
    for (const codec of ['raw', 'msgpack'] as const) {
      const name = uniqueName(`copies-${codec}`);
      const producer = b.create<unknown>(name, { capacity: 4096, codec: codec as 'msgpack', maxMessageSize: 1100 });
      const consumer = b.open<unknown>(name);
      try {
        const kept: { round: number; size: number; got: Buffer }[] = [];
        for (let round = 0; round < 40; round++)
          for (const size of sizes) {
            const bytes = bytesOf(round, size);
            expect(producer.trySend(codec === 'raw' ? bytes : { round, bytes })).toBe(true);
            const got = consumer.tryReceive() as Buffer & { bytes: Buffer };
            kept.push({ round, size, got: codec === 'raw' ? got : got.bytes });
          }
        expect(producer.stats().bytesSent).toBeGreaterThan(20 * 4096); // the ring wrapped many times
        for (const { round, size, got } of kept) {
          expect(Buffer.isBuffer(got)).toBe(true);
          expect(Buffer.compare(got, bytesOf(round, size))).toBe(0);
        }
      } finally {
        consumer.close();
        producer.close();
      }
    }
  });

  it('uses a custom codec on both sides', () => {
    const codec = {
      encode: (value: string) => Buffer.from(value.split('').reverse().join('')),
      decode: (bytes: Uint8Array) => Buffer.from(bytes).toString().split('').reverse().join(''),
    };
    const name = uniqueName('custom');
    const producer = b.create<string>(name, { codec });
    const consumer = b.open<string>(name, { codec });
    try {
      producer.sendSync('stressed');
      expect(consumer.receiveSync()).toBe('stressed');
    } finally {
      consumer.close();
      producer.close();
    }
  });
});
