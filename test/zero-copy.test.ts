// Zero copy on raw channels: sendWith / trySendWith fill the message in place, and
// receiveView / tryReceiveView answer a view of it inside the ring. A producer in
// another process, every byte checked; a fill that throws commits nothing; a view
// stays intact until the next receiving call, however full the producer makes the
// ring meanwhile.
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';
import { rawMessage } from './fixtures/messages.mjs';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const tagged = (tag: number, i: number) => Buffer.concat([Buffer.from([tag]), rawMessage(i) as Buffer]);

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  for (const mode of ['spsc', 'mpsc', 'mpmc', 'broadcast'] as const)
    it(`${mode}: every message of another process arrives byte for byte, and a fill that throws commits nothing`, async () => {
      const name = uniqueName(`zc-${mode}`);
      // 16 KiB against messages of up to 1500 bytes: records wrap the ring many times
      const channel = b.create<Uint8Array>(name, { capacity: 16384, mode, codec: 'raw', maxMessageSize: 2048 });
      try {
        if (mode === 'broadcast') expect(channel.tryReceiveView()).toBeUndefined(); // subscribes
        const count = 2000;
        const producer = b.startFixture('zero-copy-producer.mjs', [name, String(count), '7']);
        for (let i = 0; i < count; i++) {
          let view: Buffer | undefined;
          if (i % 2 === 0) view = channel.tryReceiveView();
          view ??= await channel.receiveView({ timeout: 20_000 });
          // a failed fill's bytes (0xa5...) or a lost message would show here
          if (!view.equals(tagged(7, i))) throw new Error(`message ${i} differs: ${view.subarray(0, 8).toString('hex')}`);
        }
        await expect(channel.receiveView()).rejects.toMatchObject({ code: 'ERR_ENDED' });
        expect((await producer.exited).code).toBe(0);
        // a broadcast ring keeps (and counts as received) what its subscribers read
        // only once producers need the room
        expect(channel.stats()).toMatchObject(mode === 'broadcast' ? { messagesSent: count } : { messagesReceived: count, messagesSent: count, used: 0 });
      } finally {
        channel.close();
      }
    });

  it('mpsc: a producer whose fills throw never holds up another producer', async () => {
    const name = uniqueName('zc-two');
    const channel = b.create<Uint8Array>(name, { capacity: 16384, mode: 'mpsc', codec: 'raw', maxMessageSize: 2048 });
    try {
      const count = 1000;
      const producers = [1, 2].map((tag) => b.startFixture('zero-copy-producer.mjs', [name, String(count), String(tag), 'no-end']));
      const next = [0, 0, 0];
      for (let n = 0; n < 2 * count; n++) {
        const view = await channel.receiveView({ timeout: 20_000 });
        const tag = view[0];
        if (tag !== 1 && tag !== 2) throw new Error(`a message tagged ${tag}`);
        if (!view.equals(tagged(tag, next[tag]))) throw new Error(`producer ${tag}'s message ${next[tag]} differs`);
        next[tag]++;
      }
      for (const p of producers) expect((await p.exited).code).toBe(0);
      expect(channel.tryReceiveView()).toBeUndefined();
      expect(channel.stats()).toMatchObject({ messagesReceived: 2 * count, used: 0 });
    } finally {
      channel.close();
    }
  });

  for (const mode of ['spsc', 'mpsc', 'mpmc', 'broadcast'] as const)
    it(`${mode}: a view stays intact while the producer fills the ring behind it, until the next receive`, async () => {
      const name = uniqueName(`zc-held-${mode}`);
      const channel = b.create<Uint8Array>(name, { capacity: 8192, mode, codec: 'raw', maxMessageSize: 2048 });
      try {
        if (mode === 'broadcast') expect(channel.tryReceiveView()).toBeUndefined(); // subscribes
        const count = 400;
        const producer = b.startFixture('zero-copy-producer.mjs', [name, String(count), '3', 'fill-first']);
        const first = await channel.receiveView({ timeout: 20_000 });
        expect(first.equals(tagged(3, 0))).toBe(true);
        // The producer sends until nothing fits: it may take every byte but the view's.
        const full = Number((await producer.line('full ')).split(' ')[1]);
        expect(full).toBeLessThan(count);
        expect(first.equals(tagged(3, 0))).toBe(true);
        const usedWhileHeld = channel.stats().used;
        expect(usedWhileHeld).toBeGreaterThan(8192 - 2048);
        // The producer waits for room (sendWith) and gets it only from the next receive.
        for (let i = 1; i < count; i++) {
          const view = await channel.receiveView({ timeout: 20_000 });
          if (!view.equals(tagged(3, i))) throw new Error(`message ${i} differs`);
        }
        expect((await producer.exited).code).toBe(0); // it has ended the channel
        expect(() => channel.tryReceiveView()).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
      } finally {
        channel.close();
      }
    });

  it("refuses views on an 'overwrite' broadcast channel, where a message can change while it is read", () => {
    const name = uniqueName('zc-overwrite');
    const channel = b.create<Uint8Array>(name, { codec: 'raw', mode: 'broadcast', overflow: 'overwrite' });
    try {
      expect(() => channel.tryReceiveView()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('receiveInto') }));
      expect(channel.tryReceive()).toBeUndefined();
    } finally {
      channel.close();
    }
  });

  it('releases a held view at close(), so the next consumer gets the message after it', () => {
    const name = uniqueName('zc-close');
    const channel = b.create<Uint8Array>(name, { codec: 'raw' });
    try {
      for (const text of ['one', 'two']) expect(channel.trySendWith(text.length, (t) => t.write(text))).toBe(true);
      const consumer = b.open<Uint8Array>(name, { codec: 'raw' });
      expect(consumer.tryReceiveView()?.toString()).toBe('one');
      consumer.close();
      const next = b.open<Uint8Array>(name, { codec: 'raw' });
      expect(next.tryReceive()).toEqual(Buffer.from('two'));
      next.close();
    } finally {
      channel.close();
    }
  });

  it('refuses the zero-copy calls on a channel that is not raw, and bad arguments, changing nothing', async () => {
    const name = uniqueName('zc-refuse');
    const channel = b.create(name);
    const raw = b.create<Uint8Array>(uniqueName('zc-refuse-raw'), { codec: 'raw', capacity: 4096 });
    try {
      expect(() => channel.trySendWith(1, () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG', message: expect.stringContaining("codec 'raw'") }));
      await expect(channel.sendWith(1, () => {})).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
      expect(() => channel.tryReceiveView()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      await expect(channel.receiveView()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
      for (const length of [-1, 1.5, NaN, '8'])
        expect(() => raw.trySendWith(length as number, () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      expect(() => raw.trySendWith(1, 'fill' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      expect(() => raw.trySendWith(raw.maxMessageSize + 1, () => {})).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }));
      // a fill that sends on its own channel would commit under itself
      const nested = new Error('nested');
      expect(() => raw.trySendWith(2, () => raw.trySend(Buffer.from('x')))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      expect(() => raw.trySendWith(2, () => { throw nested; })).toThrow(nested);
      expect(raw.stats()).toMatchObject({ messagesSent: 0, used: 0 });
      expect(channel.stats()).toMatchObject({ messagesSent: 0, used: 0 });
      // a full ring: false, and fill is not called
      let filled = 0;
      while (raw.trySendWith(1000, () => void filled++));
      const calls = filled;
      expect(raw.trySendWith(1000, () => void filled++)).toBe(false);
      expect(filled).toBe(calls);
      expect(raw.tryReceiveView()?.length).toBe(1000);
    } finally {
      channel.close();
      raw.close();
    }
  });

  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: a send that waits for room sends the bytes it was given, whatever becomes of them meanwhile`, async () => {
      const channel = b.create<Uint8Array>(uniqueName(`zc-keep-${mode}`), { codec: 'raw', mode, capacity: 4096 });
      try {
        let filled = 0;
        while (channel.trySend(Buffer.alloc(500, filled))) filled++;
        const message = Buffer.alloc(500, 0xab);
        const sent = channel.send(message, { timeout: 20_000 });
        message.fill(0); // the caller reuses its buffer at once
        for (let i = 0; i < filled; i++) expect(channel.tryReceive()).toEqual(Buffer.alloc(500, i));
        await sent;
        expect(channel.tryReceive()).toEqual(Buffer.alloc(500, 0xab));
      } finally {
        channel.close();
      }
    });

  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: a send whose value's getter sends on another channel delivers both messages intact`, async () => {
      const outer = b.create(uniqueName(`nested-outer-${mode}`), { mode, capacity: 65536 });
      const inner = b.create(uniqueName('nested-inner'), { capacity: 65536 });
      try {
        const result = await b.runFixture('nested-send.mjs', [outer.name, inner.name]);
        expect(result).toEqual({ sent: 30 });
        for (let i = 0; i < 30; i++) {
          const payload = Buffer.alloc(64 + i, i & 0xff);
          expect(outer.tryReceive()).toEqual({ i, before: 'x'.repeat(i), nested: { seen: i }, after: payload });
          expect(inner.tryReceive()).toEqual({ from: 'getter', i, payload, text: 'y'.repeat(300) });
        }
        expect(() => outer.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
        expect(() => inner.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ENDED' }));
      } finally {
        outer.close();
        inner.close();
      }
    });
});
