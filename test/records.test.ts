// Channels created with { records: true }: msgpackr records over structures kept in
// the segment, shared by producers in different processes and by a consumer's successor.
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';
import { recordMessage } from './fixtures/messages.mjs';
import * as layout from '../dist/core/layout.js';
import { relayConsumer } from '../dist/nats/relay.js';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** What records-consumer.mjs prints for a message: JSON, with Buffers as { bytes }. */
const asPrinted = (value: unknown) =>
  JSON.parse(JSON.stringify(value, (_key, v) => (v?.type === 'Buffer' ? { bytes: v.data } : v)));

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('4 producer processes racing to add structures: every message arrives whole, in per-producer order', async () => {
    const name = uniqueName('records-mpsc');
    const channel = b.create(name, { mode: 'mpsc', records: true, capacity: 64 * 1024 });
    try {
      expect(channel.records).toBe(true);
      const count = 3000;
      const producers = [0, 1, 2, 3].map((id) => b.runFixture('records-producer.mjs', [name, String(id), String(count)]));
      const next = [0, 0, 0, 0];
      let received = 0;
      while (received < 4 * count) {
        const message = (await channel.receive({ timeout: 20_000 })) as { p: number; i: number };
        expect(message).toEqual(recordMessage(message.p, next[message.p]));
        next[message.p]++;
        received++;
      }
      expect(await Promise.all(producers)).toEqual([0, 1, 2, 3].map(() => ({ sent: count, records: true })));
      expect(next).toEqual([count, count, count, count]);
      // The table filled up: 40 shared key lists and 4 × 7 own ones do not fit, and
      // the rest travelled inside their messages; everything still decoded above.
      const header = new DataView(channel['ring'].i32.buffer);
      const length = header.getUint32(layout.OFF_STRUCTURES_LENGTH, true);
      expect(length).toBeGreaterThan(0);
      expect(length).toBeLessThanOrEqual(layout.STRUCTURES_SIZE);
    } finally {
      channel.close();
    }
  });

  it("a consumer's successor in another process decodes the rest with the segment's structures", async () => {
    const name = uniqueName('records-successor');
    const channel = b.create(name, { records: true, capacity: 256 * 1024 });
    try {
      const expected = Array.from({ length: 600 }, (_, i) => recordMessage(9, i));
      for (const message of expected) expect(channel.trySend(message)).toBe(true);
      const first = await b.runFixture('records-consumer.mjs', [name, '250']);
      const second = await b.runFixture('records-consumer.mjs', [name, '350']);
      expect([...first, ...second]).toEqual(expected.map(asPrinted));
    } finally {
      channel.close();
    }
  });

  it('refuses what records cannot do, and changes nothing', () => {
    const name = uniqueName('records-refusals');
    expect(() => b.create(name, { records: true, codec: 'raw' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => b.create(name, { records: 'yes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(b.exists(name)).toBe(false);
    const channel = b.create(name, { records: true });
    try {
      expect(() => b.open(name, { codec: 'raw' })).toThrow(expect.objectContaining({ code: 'ERR_INCOMPATIBLE' }));
      const custom = { encode: () => new Uint8Array(1), decode: () => 1 };
      expect(() => b.open(name, { codec: custom })).toThrow(expect.objectContaining({ code: 'ERR_INCOMPATIBLE' }));
      // the NATS bridge relays bytes, which mean nothing without this segment's structures
      expect(() => relayConsumer(channel)).toThrow(
        expect.objectContaining({ code: 'ERR_INCOMPATIBLE' }),
      );
      const again = b.open(name);
      expect(again.records).toBe(true);
      again.close();
    } finally {
      channel.close();
    }
  });

  it('a damaged structure table gives ERR_CORRUPT, never a crash or a wrong value', () => {
    const name = uniqueName('records-corrupt');
    const channel = b.create(name, { records: true });
    const reader = b.open(name);
    try {
      expect(channel.trySend({ alpha: 1, beta: 'two' })).toBe(true);
      expect(reader.tryReceive()).toEqual({ alpha: 1, beta: 'two' });
      // Another process scribbles: a length beyond the table, then an entry that
      // claims more keys than it holds. The reader has to load the table again for
      // a key list it has not seen.
      const view = new DataView(channel['ring'].i32.buffer);
      const length = view.getUint32(layout.OFF_STRUCTURES_LENGTH, true);
      view.setUint32(layout.OFF_STRUCTURES_LENGTH, layout.STRUCTURES_SIZE + 8, true);
      expect(() => channel.trySend({ gamma: 3 })).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT' }));
      view.setUint32(layout.OFF_STRUCTURES_LENGTH, length, true);
      expect(channel.trySend({ gamma: 3 })).toBe(true);
      view.setUint16(layout.OFF_STRUCTURES + length, 500, true); // the entry for { gamma } now claims 500 keys
      expect(() => reader.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_CORRUPT' }));
    } finally {
      reader.close();
      channel.close();
    }
  });
});
