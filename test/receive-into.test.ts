// receiveInto: raw messages copied into a buffer of the caller's, so that receiving
// allocates nothing. A producer in another process, every byte checked, and the
// refusals, none of which may lose a message.
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';
import { rawMessage } from './fixtures/messages.mjs';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const raw = (i: number) => rawMessage(i) as Buffer;

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: gets every message of another process byte for byte, through all three calls, into one buffer`, async () => {
      const name = uniqueName(`into-${mode}`);
      // 16 KiB against messages of up to 1499 bytes: records wrap the ring many times
      const channel = b.create<Uint8Array>(name, { capacity: 16384, mode, codec: 'raw', maxMessageSize: 2048 });
      try {
        const count = 3000;
        const producer = b.startFixture('producer.mjs', [name, String(count), 'raw']);
        const into = Buffer.alloc(channel.maxMessageSize, 0xee);
        for (let i = 0; i < count; i++) {
          let length: number | undefined;
          if (i % 3 === 0) length = await channel.receiveInto(into, { timeout: 20_000 });
          else if (i % 3 === 1) length = channel.receiveIntoSync(into, { timeout: 20_000 });
          else {
            length = channel.tryReceiveInto(into);
            if (length === undefined) length = await channel.receiveInto(into, { timeout: 20_000 });
          }
          const expected = raw(i);
          expect(length).toBe(expected.length);
          if (!into.subarray(0, length).equals(expected)) throw new Error(`message ${i} differs`);
        }
        await expect(channel.receiveInto(into)).rejects.toMatchObject({ code: 'ERR_ENDED' });
        expect(() => channel.tryReceiveInto(into)).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
        expect((await producer.exited).code).toBe(0);
        expect(channel.stats()).toMatchObject({ messagesReceived: count, messagesSent: count });
      } finally {
        channel.close();
      }
    });

  it('copies every length, into buffers at any offset, and writes only the message\'s own bytes', () => {
    // Up to 256 bytes the copy goes word by word, above by set(); aligned and odd
    // targets take different paths, and a new target each call must be noticed.
    const name = uniqueName('into-lengths');
    const channel = b.create<Uint8Array>(name, { capacity: 65536, codec: 'raw' });
    try {
      const backing = new ArrayBuffer(400);
      for (let length = 0; length <= 300; length++) {
        const message = Buffer.alloc(length);
        for (let i = 0; i < length; i++) message[i] = (length * 7 + i * 13 + 1) & 0xff;
        for (const offset of [0, 1, 2, 3, 4, 8]) {
          expect(channel.trySend(message)).toBe(true);
          const whole = new Uint8Array(backing).fill(0xee);
          const target = new Uint8Array(backing, offset, 392 - offset);
          expect(channel.tryReceiveInto(target)).toBe(length);
          if (!Buffer.from(target.subarray(0, length)).equals(message)) throw new Error(`length ${length} at offset ${offset} differs`);
          for (let i = 0; i < whole.length; i++)
            if ((i < offset || i >= offset + length) && whole[i] !== 0xee) throw new Error(`length ${length} at offset ${offset} wrote byte ${i}`);
        }
      }
      expect(channel.tryReceiveInto(new Uint8Array(1))).toBeUndefined();
    } finally {
      channel.close();
    }
  });

  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: leaves a message longer than the buffer in the channel (ERR_MESSAGE_TOO_LARGE); an empty one reads as 0`, async () => {
      const name = uniqueName('into-small');
      const channel = b.create<Uint8Array>(name, { capacity: 4096, mode, codec: 'raw' });
      try {
        channel.trySend(Buffer.from('0123456789'));
        channel.trySend(Buffer.alloc(0));
        const small = Buffer.alloc(4);
        const tooSmall = expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE', message: expect.stringMatching(/10 bytes.*4.*stays in the channel/) });
        expect(() => channel.tryReceiveInto(small)).toThrow(tooSmall);
        expect(() => channel.receiveIntoSync(small)).toThrow(tooSmall);
        await expect(channel.receiveInto(small)).rejects.toEqual(tooSmall);
        expect(channel.stats().messagesReceived).toBe(0);
        const big = Buffer.alloc(10);
        expect(channel.tryReceiveInto(big)).toBe(10);
        expect(big.toString()).toBe('0123456789');
        expect(channel.tryReceiveInto(small)).toBe(0);
        expect(channel.tryReceiveInto(small)).toBeUndefined();
      } finally {
        channel.close();
      }
    });

  it('waits for a message, honours timeout and signal, and refuses what is not raw bytes', async () => {
    const name = uniqueName('into-wait');
    const channel = b.create<Uint8Array>(name, { capacity: 4096, codec: 'raw' });
    const msgpack = b.create(uniqueName('into-msgpack'), { capacity: 4096 });
    try {
      const into = new Uint8Array(100);
      expect(() => channel.receiveIntoSync(into, { timeout: 0 })).toThrow(expect.objectContaining({ code: 'ERR_TIMEOUT' }));
      await expect(channel.receiveInto(into, { timeout: 0 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      await expect(channel.receiveInto(into, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      const waiting = channel.receiveInto(into, { timeout: 20_000 });
      // raw messages 0 (empty) and 1 (37 bytes), then the end
      const producer = b.startFixture('producer.mjs', [name, '2', 'raw']);
      expect(await waiting).toBe(0);
      expect(await channel.receiveInto(into, { timeout: 20_000 })).toBe(37);
      expect(Buffer.from(into.subarray(0, 37)).equals(raw(1))).toBe(true);
      expect((await producer.exited).code).toBe(0);
      for (const bad of [undefined, 'text', [1, 2], new ArrayBuffer(8)])
        expect(() => channel.tryReceiveInto(bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      msgpack.trySend({ kept: true });
      expect(() => msgpack.tryReceiveInto(into)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(/msgpack.*use receive\(\)/) }));
      expect(msgpack.tryReceive()).toEqual({ kept: true });
    } finally {
      msgpack.close();
      channel.close();
    }
    expect(() => channel.tryReceiveInto(new Uint8Array(8))).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
