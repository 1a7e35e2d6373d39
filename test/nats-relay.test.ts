// The internal relaying capabilities the NATS bridge is built on: looking at a
// message before consuming it, with an id (its 64-bit ring position) that stays the
// same across handles and crashes; and a producer checkpoint that tells which
// message the ring holds last after a SIGKILL at any point.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { relayConsumer, EMPTY, ENDED } from '../dist/nats/relay.js';
import { cleanupChannels, killFixtures, runFixture, startFixture, uniqueName } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const identity = { encode: (b: Buffer) => b, decode: (b: Buffer) => b };
const message = (i: number) => Buffer.alloc(1 + ((i * 37) % 300), i & 0xff);

/** Reads or writes a little-endian integer of the segment through its file. */
function segmentWord(name: string, offset: number, bytes: 4 | 8, value?: bigint): bigint {
  const fd = openSync(`/dev/shm/${name}`, 'r+');
  try {
    const buffer = Buffer.alloc(bytes);
    if (value !== undefined) {
      if (bytes === 4) buffer.writeUInt32LE(Number(value));
      else buffer.writeBigUInt64LE(value);
      writeSync(fd, buffer, 0, bytes, offset);
      return value;
    }
    readSync(fd, buffer, 0, bytes, offset);
    return bytes === 4 ? BigInt(buffer.readUInt32LE()) : buffer.readBigUInt64LE();
  } finally {
    closeSync(fd);
  }
}

/** Sends what fits (ending the stream after `total`), hands out up to 3 messages,
 * checking their bytes and that their ids increase, and commits them. */
function relayRound(producer: Channel<Buffer>, relay: ReturnType<typeof relayConsumer>, run: { sent: number; received: number; last: bigint }, total: number): void {
  while (run.sent < total && producer.trySend(message(run.sent))) run.sent++;
  if (run.sent === total) producer.end();
  for (let k = 0; k < 3; k++) {
    const m = relay.next();
    if (m === EMPTY || m === ENDED) break;
    expect(m.bytes.equals(message(run.received + relay.pending - 1))).toBe(true);
    expect(m.position > run.last).toBe(true);
    run.last = m.position;
  }
  while (relay.pending > 0) {
    relay.commit();
    run.received++;
  }
}

describe.each(['spsc', 'mpsc'] as const)('a relaying consumer (%s)', (mode) => {
  it('peeks ahead without consuming, commits in order, and gives each message the same id from any handle', () => {
    const name = uniqueName(`peek-${mode}`);
    const producer = Channel.create<Buffer>(name, { mode, codec: identity, capacity: 4096 });
    for (let i = 0; i < 5; i++) producer.sendSync(message(i));
    const consumer = Channel.open<Buffer>(name, { codec: identity });
    const relay = relayConsumer(consumer);
    const seen = [0, 1, 2].map(() => relay.next());
    seen.forEach((m, i) => expect(m !== EMPTY && m !== ENDED && m.bytes.equals(message(i))).toBe(true));
    const positions = seen.map((m) => (m as { position: bigint }).position);
    expect(positions[0]).toBe(0n);
    expect(positions[1] > positions[0] && positions[2] > positions[1]).toBe(true);
    expect(consumer.stats().messagesReceived).toBe(0);
    relay.commit();
    expect(consumer.stats().messagesReceived).toBe(1);
    consumer.close();

    // a new consumer starts at the oldest unconsumed message, with the same id
    const again = Channel.open<Buffer>(name, { codec: identity });
    const relay2 = relayConsumer(again);
    const second = relay2.next();
    expect(second !== EMPTY && second !== ENDED && second.position).toBe(positions[1]);
    relay2.rewind();
    const still = relay2.next();
    expect(still !== EMPTY && still !== ENDED && still.position).toBe(positions[1]);
    relay2.commit();
    expect(again.receiveSync({ timeout: 0 }).equals(message(2))).toBe(true);
    again.close();
    producer.close();
  });

  it('keeps ids increasing across many wraps of the ring, and ends at the end of the stream', async () => {
    const name = uniqueName(`wrap-${mode}`);
    const producer = Channel.create<Buffer>(name, { mode, codec: identity, capacity: 4096 });
    let consumer = Channel.open<Buffer>(name, { codec: identity });
    let relay = relayConsumer(consumer);
    const run = { sent: 0, received: 0, last: -1n };
    while (run.received < 2000) {
      relayRound(producer, relay, run, 2000);
      if (run.received % 500 === 0) {
        // a successor continues the ids where this consumer stopped
        consumer.close();
        consumer = Channel.open<Buffer>(name, { codec: identity });
        relay = relayConsumer(consumer);
      }
    }
    expect(relay.next()).toBe(ENDED);
    await relay.waitForMore();
    expect(run.last > 4096n * 10n).toBe(true);
    consumer.close();
    producer.close();
  });

  it('recovers the 64-bit head of a consumer killed between storing the position and the head', () => {
    const name = uniqueName(`position-${mode}`);
    const producer = Channel.create<Buffer>(name, { mode, codec: identity, capacity: 4096 });
    for (let i = 0; i < 3; i++) producer.sendSync(message(i));
    const consumer = Channel.open<Buffer>(name, { codec: identity });
    const relay = relayConsumer(consumer);
    const first = relay.next() as { position: bigint };
    const second = relay.next() as { position: bigint };
    relay.commit();
    consumer.close();
    // as if the next commit had stored the position after `second`, then died
    const head = segmentWord(name, 256, 4);
    segmentWord(name, 288, 8, second.position + (second.position - first.position));
    const successor = Channel.open<Buffer>(name, { codec: identity });
    const again = relayConsumer(successor).next() as { position: bigint; bytes: Buffer };
    expect(again.position).toBe(second.position);
    expect(again.bytes.equals(message(1))).toBe(true);
    expect(segmentWord(name, 256, 4)).toBe(head);
    successor.close();
    producer.close();
  });
});

describe.each([
  ['broadcast', 'block'],
  ['broadcast', 'overwrite'],
  ['mpmc', 'block'],
] as const)('a relaying consumer (%s, %s)', (mode, overflow) => {
  const options = { mode, codec: identity, capacity: 4096, ...(mode === 'broadcast' ? { overflow } : {}) };

  // under 'overwrite' the producer laps a relay that reads this slowly: see the next describe
  it.skipIf(overflow === 'overwrite')('hands out copies, commits in order, and keeps the ring moving over many wraps (a blocking producer never waits for it forever)', () => {
    const name = uniqueName(`fan-wrap-${mode}-${overflow}`);
    const producer = Channel.create<Buffer>(name, options);
    const consumer = Channel.open<Buffer>(name, { codec: identity });
    const relay = relayConsumer(consumer);
    const run = { sent: 0, received: 0, last: -1n };
    while (run.received < 2000) relayRound(producer, relay, run, 2000);
    expect(relay.next()).toBe(ENDED);
    expect(relay.lost).toBe(0);
    expect(run.last > (1n << 32n) + 4096n * 10n).toBe(true);
    consumer.close();
    producer.close();
  });

  it('rewinds to the same copies under the same ids, which no other consumer gets meanwhile', () => {
    const name = uniqueName(`fan-rewind-${mode}-${overflow}`);
    const producer = Channel.create<Buffer>(name, options);
    const consumer = Channel.open<Buffer>(name, { codec: identity });
    const relay = relayConsumer(consumer);
    const other = Channel.open<Buffer>(name, { codec: identity });
    expect(other.tryReceive()).toBeUndefined(); // subscribes, or joins as a worker
    for (let i = 0; i < 5; i++) producer.sendSync(message(i));
    const first = [0, 1, 2].map(() => relay.next() as { bytes: Buffer; position: bigint });
    first.forEach((m, i) => expect(m.bytes.equals(message(i))).toBe(true));
    // mpmc: the other worker gets only what the relay did not take; broadcast: everything
    expect(other.tryReceive()?.equals(message(mode === 'mpmc' ? 3 : 0))).toBe(true);
    relay.rewind();
    const again = [0, 1, 2].map(() => relay.next() as { bytes: Buffer; position: bigint });
    expect(again.map((m) => m.position)).toEqual(first.map((m) => m.position));
    again.forEach((m, i) => expect(m.bytes.equals(message(i))).toBe(true));
    expect(new Set(first.map((m) => relay.messageId(m.position))).size).toBe(3);
    relay.commit();
    relay.rewind();
    expect((relay.next() as { position: bigint }).position).toBe(first[1].position);
    other.close();
    consumer.close();
    producer.close();
  });
});

describe("a relaying consumer of a broadcast 'overwrite' channel", () => {
  it('keeps what it copied when lapped, and counts exactly what was overwritten before it read it', () => {
    const name = uniqueName('fan-lost');
    const producer = Channel.create<Buffer>(name, { mode: 'broadcast', overflow: 'overwrite', codec: identity, capacity: 4096 });
    const consumer = Channel.open<Buffer>(name, { codec: identity });
    const relay = relayConsumer(consumer);
    const total = 300; // a few laps of the ring
    for (let i = 0; i < 3; i++) producer.sendSync(message(i));
    const held = [relay.next(), relay.next()] as { bytes: Buffer }[];
    for (let i = 3; i < total; i++) producer.sendSync(message(i));
    producer.end();
    const out: Buffer[] = [];
    for (;;) {
      const m = relay.next();
      if (m === ENDED) break;
      if (m === EMPTY) throw new Error('EMPTY before the end');
      out.push(m.bytes);
    }
    while (relay.pending > 0) relay.commit();
    expect(held.map((m) => m.bytes.equals(message(held.indexOf(m))))).toEqual([true, true]);
    expect(relay.lost).toBeGreaterThan(0);
    expect(2 + out.length + relay.lost).toBe(total);
    // what came after the loss is the newest messages, in order
    out.forEach((bytes, k) => expect(bytes.equals(message(total - out.length + k))).toBe(true));
    consumer.close();
    producer.close();
  });
});

describe('a relaying producer checkpoint, across SIGKILL', () => {
  const tag = 1234;

  async function setUp(): Promise<{ name: string; consumer: Channel<Buffer>; recovered: () => Promise<number> }> {
    const name = uniqueName('checkpoint');
    const consumer = Channel.create<Buffer>(name, { codec: identity, capacity: 4096 });
    await runFixture('relay-producer.mjs', [name, String(tag), '7', 'never']);
    return {
      name,
      consumer,
      recovered: async () => (await runFixture('relay-producer.mjs', [name, String(tag), '999', 'never'])).recovered,
    };
  }

  async function crash(name: string, seq: number, at: string): Promise<void> {
    const fixture = startFixture('relay-producer.mjs', [name, String(tag), String(seq), at]);
    expect((await fixture.exited).signal).toBe('SIGKILL');
  }

  it('starts at 0, and a message sent and checkpointed is recovered', async () => {
    const { consumer, recovered } = await setUp();
    expect(await recovered()).toBe(7);
    consumer.close();
  });

  it('a kill before the send leaves the previous checkpoint', async () => {
    const { name, consumer, recovered } = await setUp();
    await crash(name, 8, 'before-send');
    expect(await recovered()).toBe(7);
    consumer.close();
  });

  it('a kill after the send, before the checkpoint, counts the message as delivered', async () => {
    const { name, consumer, recovered } = await setUp();
    await crash(name, 8, 'after-send');
    expect(await recovered()).toBe(8);
    consumer.close();
  });

  it('a kill after the commit, before the tail was published, counts the message as delivered', async () => {
    const { name, consumer, recovered } = await setUp();
    const tailBefore = segmentWord(name, 128, 4);
    await crash(name, 8, 'after-send');
    segmentWord(name, 128, 4, tailBefore); // as if the tail store had not happened
    expect(await recovered()).toBe(8);
    expect(consumer.receiveSync({ timeout: 0 }).toString()).toBe('7');
    expect(consumer.receiveSync({ timeout: 0 }).toString()).toBe('8');
    consumer.close();
  });

  it('a kill after the checkpoint keeps it', async () => {
    const { name, consumer, recovered } = await setUp();
    await crash(name, 8, 'after-checkpoint');
    expect(await recovered()).toBe(8);
    consumer.close();
  });

  it('a checkpoint of another source starts over', async () => {
    const { name, consumer } = await setUp();
    expect((await runFixture('relay-producer.mjs', [name, String(tag + 1), '1', 'never'])).recovered).toBe(0);
    consumer.close();
  });
});
