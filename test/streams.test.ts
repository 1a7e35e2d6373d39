import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel, createReadStream, createWriteStream } from '../dist/index.js';
import { cleanupChannels, killFixtures, runFixture, startFixture, uniqueName, until } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const MiB = 1 << 20;

/** Everything a readable stream yields, and how it finished. */
function collect(stream: Readable): Promise<{ data: Buffer; error?: Error & { code?: string } }> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    stream.on('end', () => resolve({ data: Buffer.concat(chunks) }));
    stream.on('error', (error) => resolve({ data: Buffer.concat(chunks), error }));
  });
}

function errorOf(stream: Readable | Writable): Promise<Error & { code?: string }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

describe('between two processes', () => {
  it('carries 64 MiB of random bytes through stream.pipeline with identical sha256', async () => {
    const name = uniqueName('stream-64m');
    const reader = startFixture('stream-read.mjs', [name]);
    const writer = startFixture('stream-write.mjs', [name, String(64 * MiB), '--create']);
    const [sent, received] = await Promise.all([writer.exited, reader.exited]).then(() => [
      JSON.parse(writer.stdout()),
      JSON.parse(reader.stdout()),
    ]);
    expect(writer.stderr()).toBe('');
    expect(received).toEqual({ bytes: 64 * MiB, sha256: sent.sha256 });
    expect(existsSync(`/dev/shm/${name}`)).toBe(false); // the reader removed it at the end
  });

  it('works with the reader creating the channel and a small ring', async () => {
    const name = uniqueName('stream-reader-creates');
    const writer = startFixture('stream-write.mjs', [name, String(3 * MiB + 17)]);
    const reader = collect(createReadStream(name, { create: true, capacity: 16 * 1024 }));
    const { data, error } = await reader;
    await writer.exited;
    expect(error).toBeUndefined();
    expect(data.length).toBe(3 * MiB + 17);
    expect(JSON.parse(writer.stdout()).bytes).toBe(3 * MiB + 17);
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  });

  it('a writer that dies before end(): the reader gets everything it wrote, then ERR_PEER_GONE', async () => {
    const name = uniqueName('stream-writer-dies');
    const reader = collect(createReadStream(name, { create: true }));
    const writer = startFixture('stream-write.mjs', [name, String(3 * MiB), '--hang']);
    const { sha256 } = JSON.parse(await writer.line('sha256'));
    writer.child.kill('SIGKILL');
    const { data, error } = await reader;
    expect(error).toMatchObject({ code: 'ERR_PEER_GONE' });
    expect(error!.message).toContain(name);
    expect(data.length).toBe(3 * MiB);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(data).digest('hex')).toBe(sha256);
  });

  it('a reader that dies while the writer waits for room: the writer gets ERR_PEER_GONE', async () => {
    const name = uniqueName('stream-reader-dies');
    const writer = createWriteStream(name, { create: true, capacity: 4096 });
    const failed = errorOf(writer);
    const reader = startFixture('stream-read.mjs', [name, '--stall']);
    writer.write(randomBytes(64 * 1024));
    await reader.line('stalled');
    const probe = Channel.open(name);
    await until(() => probe.stats().used > 2048); // the ring is full and the writer waits
    reader.child.kill('SIGKILL');
    expect(await failed).toMatchObject({ code: 'ERR_PEER_GONE' });
    probe.close();
  });

  it('a reader that dies with bytes unread while the ring has room: the writer fails at end() with ERR_PEER_GONE', async () => {
    const name = uniqueName('stream-reader-dies-early');
    const writer = createWriteStream(name, { create: true, capacity: 64 * 1024 });
    const failed = errorOf(writer);
    const reader = startFixture('stream-read.mjs', [name, '--stall']);
    for (let i = 0; i < 5; i++) await new Promise((resolve) => writer.write(randomBytes(10_000), resolve));
    await reader.line('stalled');
    reader.child.kill('SIGKILL');
    await reader.exited;
    writer.end();
    const error = await failed;
    expect(error).toMatchObject({ code: 'ERR_PEER_GONE' });
    expect(error.message).toMatch(/bytes unread/);
  });
});

describe('in one process', () => {
  it('backpressure: write() returns false while the ring is full, and drain comes once a reader makes room', async () => {
    const name = uniqueName('stream-backpressure');
    const writer = createWriteStream(name, { create: true, capacity: 4096, highWaterMark: 1024 });
    const probe = Channel.open(name);
    try {
      const chunk = randomBytes(1000);
      const written: Buffer[] = [];
      for (let i = 0; i < 16; i++) {
        writer.write(chunk);
        written.push(chunk);
      }
      await until(() => probe.stats().used > 2048); // the ring holds what fits
      expect(writer.writableLength).toBeGreaterThan(1024); // the rest is held back, not lost
      expect(writer.write(chunk)).toBe(false);
      written.push(chunk);
      expect(writer.writableNeedDrain).toBe(true);
      const drained = once(writer, 'drain');
      const reader = collect(createReadStream(name));
      await drained;
      writer.end();
      const { data, error } = await reader;
      expect(error).toBeUndefined();
      expect(data.equals(Buffer.concat(written))).toBe(true);
    } finally {
      probe.close();
    }
  });

  it('splits a write larger than maxMessageSize, and the bytes arrive identical', async () => {
    const name = uniqueName('stream-split');
    const writer = createWriteStream(name, { create: true, capacity: 16 * 1024 });
    const probe = Channel.open(name);
    const big = randomBytes(50_000);
    writer.end(big);
    const { data, error } = await collect(createReadStream(name));
    expect(error).toBeUndefined();
    expect(data.equals(big)).toBe(true);
    expect(probe.maxMessageSize).toBe(4096);
    expect(probe.stats().messagesSent).toBe(Math.ceil(50_000 / 4096));
    probe.close();
  });

  it('end() with nothing written ends the reader at once; strings are written as UTF-8', async () => {
    const empty = uniqueName('stream-empty');
    createWriteStream(empty, { create: true }).end();
    expect((await collect(createReadStream(empty))).data.length).toBe(0);

    const text = uniqueName('stream-text');
    const writer = createWriteStream(text);
    const writerClosed = once(writer, 'close');
    const reader = collect(createReadStream(text, { create: true }));
    writer.write('wörld ');
    writer.end('🚀');
    expect((await reader).data.toString('utf8')).toBe('wörld 🚀');
    await writerClosed;
  });

  it('a reader destroyed before the end stops the writer with ERR_PEER_GONE and removes the name', async () => {
    const name = uniqueName('stream-reader-stops');
    const writer = createWriteStream(name, { create: true, capacity: 4096 });
    const failed = errorOf(writer);
    const reader = createReadStream(name);
    const readerClosed = once(reader, 'close');
    reader.once('data', () => reader.destroy());
    writer.write(randomBytes(100_000));
    const error = await failed;
    expect(error).toMatchObject({ code: 'ERR_PEER_GONE' });
    expect(error.message).toMatch(/reading side went away before the end of the stream, with \d+ bytes unread/);
    await readerClosed;
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  });

  it('a writer destroyed before end(): the reader reads what was written, then ERR_PEER_GONE', async () => {
    const name = uniqueName('stream-writer-stops');
    const writer = createWriteStream(name, { create: true });
    writer.write(Buffer.from('partial'), () => writer.destroy());
    const { data, error } = await collect(createReadStream(name));
    expect(data.toString()).toBe('partial');
    expect(error).toMatchObject({ code: 'ERR_PEER_GONE' });
  });

  it('a corrupt segment is a stream error (ERR_CORRUPT)', async () => {
    const name = uniqueName('stream-corrupt');
    const writer = createWriteStream(name, { create: true, capacity: 4096 });
    writer.write(Buffer.alloc(100, 7));
    const probe = Channel.open(name);
    await until(() => probe.stats().messagesSent === 1);
    await runFixture('scribble.mjs', [name, '8192', 'f0ffff7f01000000']);
    const { error } = await collect(createReadStream(name));
    expect(error).toMatchObject({ code: 'ERR_CORRUPT' });
    probe.close();
    writer.destroy();
  });

  it('checks arguments at once, and reports channel problems as stream errors', async () => {
    expect(() => createWriteStream('a/b')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_NAME' }));
    expect(() => createReadStream(uniqueName('x'), { codec: 'msgpack' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG' }),
    );
    expect(() => createReadStream(uniqueName('x'), { mode: 'mpsc' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG' }),
    );
    const taken = uniqueName('stream-taken');
    const channel = Channel.create(taken);
    try {
      expect(() => createWriteStream(taken, { create: true })).toThrow(expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS' }));
      // a msgpack channel is not a byte stream
      const mismatch = await errorOf(createReadStream(taken));
      expect(mismatch).toMatchObject({ code: 'ERR_INCOMPATIBLE' });
      // streams take no codec: the advice is how to make a channel a stream can use
      expect(mismatch.message).not.toMatch(/leave codec out/);
      expect(mismatch.message).toMatch(/Channel\.create\(name, \{ codec: 'raw' \}\)/);
    } finally {
      channel.close();
    }
    const missing = uniqueName('stream-missing');
    expect(await errorOf(createReadStream(missing, { timeout: 20 }))).toMatchObject({ code: 'ERR_TIMEOUT' });
  });

  it('waits for a channel that does not exist yet, and can be destroyed while it waits', async () => {
    const name = uniqueName('stream-later');
    const reader = collect(createReadStream(name));
    await new Promise((resolve) => setTimeout(resolve, 30));
    createWriteStream(name, { create: true }).end('late');
    expect((await reader).data.toString()).toBe('late');

    const waiting = createReadStream(uniqueName('stream-never'));
    let failed = false;
    waiting.on('error', () => (failed = true));
    waiting.destroy();
    await once(waiting, 'close');
    expect(failed).toBe(false);
  });
});
