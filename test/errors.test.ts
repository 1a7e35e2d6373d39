import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel, ShmChanError } from '../dist/index.js';
import {
  backends,
  cleanupChannels,
  fixtureEnv,
  fixturesDir,
  killFixtures,
  packageRoot,
  runFixture,
  uniqueName,
  using,
} from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const code = (c: string) => expect.objectContaining({ code: c });

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  describe('ERR_INVALID_NAME', () => {
    for (const bad of ['', '/', 'a/b', 'spaces here', 'ünï', 'x'.repeat(201), '..', 'semi;colon', '//double']) {
      it(`rejects ${JSON.stringify(bad.length > 20 ? bad.slice(0, 20) + '…' : bad)}`, () => {
        expect(() => b.create(bad)).toThrow(code('ERR_INVALID_NAME'));
        expect(() => b.open(bad)).toThrow(code('ERR_INVALID_NAME'));
        expect(() => b.unlink(bad)).toThrow(code('ERR_INVALID_NAME'));
      });
    }
    it('rejects a name that is not a string, and accepts 200 characters', () => {
      expect(() => b.create(42 as never)).toThrow(code('ERR_INVALID_NAME'));
      const long = uniqueName('').padEnd(200, 'x');
      b.create(long).close();
    });
    it('quotes a bad name as it was given, and calls a missing one undefined', () => {
      expect(() => b.create('bad name!')).toThrow(/^invalid channel name "bad name!": use 1 to 200 of A-Z/);
      expect(() => b.open(undefined as never)).toThrow(/^a channel name must be a string, got undefined: use 1 to 200/);
      expect(() => b.open(null as never)).toThrow(/^a channel name must be a string, got null: /);
    });
  });

  describe('ERR_INVALID_ARG', () => {
    it('rejects bad create options and creates nothing', () => {
      const name = uniqueName('bad-options');
      for (const options of [
        { capacity: -1 },
        { capacity: 1.5 },
        { capacity: 2 ** 31 },
        { capacity: '4096' },
        { mode: 'mesh' },
        { backend: 'windows' },
        { permissions: 0o1000 },
        { codec: 'json' },
        { codec: { encode: () => new Uint8Array() } },
        { maxMessageSize: 0 },
        { maxMessageSize: 4096, capacity: 4096 },
        { unlinkOnClose: 'yes' },
        'options',
      ])
        expect(() => Channel.create(name, (typeof options === 'string' ? options : { backend, ...options }) as never)).toThrow(
          code('ERR_INVALID_ARG'),
        );
      expect(() => b.open(name)).toThrow(code('ERR_CHANNEL_NOT_FOUND'));
    });

    it('rejects sending undefined, a non-bytes value on a raw channel, and bad wait options', async () => {
      const name = uniqueName('bad-send');
      const channel = b.create<unknown>(name);
      const raw = b.create<unknown>(uniqueName('bad-raw'), { codec: 'raw' });
      try {
        expect(() => channel.trySend(undefined)).toThrow(code('ERR_INVALID_ARG'));
        await expect(channel.send(undefined)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
        expect(() => raw.trySend('text')).toThrow(code('ERR_INVALID_ARG'));
        expect(() => channel.receiveSync({ timeout: -1 })).toThrow(code('ERR_INVALID_ARG'));
        await expect(channel.receive({ signal: 'stop' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
        expect(channel.stats().messagesSent).toBe(0);
      } finally {
        channel.close();
        raw.close();
      }
    });
  });

  it('ERR_CHANNEL_NOT_FOUND names the channel, and open({ timeout }) waits for it to appear', async () => {
    const name = uniqueName('missing');
    expect(() => b.open(name)).toThrow(/does not exist \(create it first, or pass \{ timeout \}/);
    try {
      b.open(name);
    } catch (error) {
      expect(error).toBeInstanceOf(ShmChanError);
      expect((error as ShmChanError).message).toContain(name);
    }
    const options = JSON.stringify({ unlinkOnClose: false, backend });
    const late = spawn(process.execPath, ['-e', `setTimeout(() => { const { Channel } = require('.'); Channel.create(${JSON.stringify(name)}, ${options}).close(); }, 200)`], { cwd: packageRoot });
    const opened = b.open(name, { timeout: 20_000 });
    expect(opened.capacity).toBe(1 << 20);
    opened.close();
    await new Promise((resolve) => late.on('exit', resolve));
  });

  it('ERR_CHANNEL_EXISTS: creation is exclusive', () => {
    const name = uniqueName('exists');
    const channel = b.create(name);
    try {
      expect(() => b.create(name)).toThrow(code('ERR_CHANNEL_EXISTS'));
      expect(() => b.create(name)).toThrow(new RegExp(name));
    } finally {
      channel.close();
    }
  });

  it.runIf(process.getuid?.() === 0)('ERR_PERMISSION: another user cannot open a 0600 channel', async () => {
    const name = uniqueName('private');
    const channel = b.create(name);
    try {
      const outcome = await new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [path.join(fixturesDir, 'try-open.mjs'), name], {
          cwd: packageRoot,
          env: fixtureEnv(backend),
          uid: 65534,
          gid: 65534,
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.on('close', () => resolve(out));
      });
      expect(JSON.parse(outcome)).toMatchObject({ result: 'error', code: 'ERR_PERMISSION', errno: 'EACCES' });
    } finally {
      channel.close();
    }
  });

  it('ERR_MESSAGE_TOO_LARGE: a message one byte over maxMessageSize is refused and nothing is written', () => {
    const name = uniqueName('too-large');
    const channel = b.create<Uint8Array>(name, { codec: 'raw', maxMessageSize: 100 });
    try {
      expect(() => channel.trySend(new Uint8Array(101))).toThrow(code('ERR_MESSAGE_TOO_LARGE'));
      expect(() => channel.sendSync(new Uint8Array(101))).toThrow(/101 bytes, more than maxMessageSize 100/);
      expect(channel.trySend(new Uint8Array(100))).toBe(true);
      expect(channel.stats().messagesSent).toBe(1);
    } finally {
      channel.close();
    }
    const packed = b.create(uniqueName('too-large-msgpack'), { maxMessageSize: 50 });
    try {
      expect(() => packed.trySend('x'.repeat(100))).toThrow(code('ERR_MESSAGE_TOO_LARGE'));
      expect(packed.trySend('short')).toBe(true);
      expect(packed.tryReceive()).toBe('short');
    } finally {
      packed.close();
    }
  });

  it('ERR_CLOSED: every method of a closed handle throws, naming the channel', async () => {
    const name = uniqueName('closed');
    const channel = b.create(name);
    channel.close();
    for (const call of [
      () => channel.trySend(1),
      () => channel.sendSync(1),
      () => channel.tryReceive(),
      () => channel.receiveSync(),
      () => channel.end(),
      () => channel.stats(),
    ])
      expect(call).toThrow(code('ERR_CLOSED'));
    await expect(channel.send(1)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(channel.receive()).rejects.toMatchObject({ code: 'ERR_CLOSED', message: expect.stringContaining(name) });
    channel.close();
  });

  it('ERR_ENDED: sending after end()', async () => {
    const channel = b.create(uniqueName('ended'));
    try {
      channel.end();
      expect(() => channel.trySend(1)).toThrow(code('ERR_ENDED'));
      await expect(channel.send(1)).rejects.toMatchObject({ code: 'ERR_ENDED' });
    } finally {
      channel.close();
    }
  });

  it('ERR_CORRUPT: an impossible record length written by another process', async () => {
    const name = uniqueName('corrupt');
    const channel = b.create(name, { capacity: 4096 });
    try {
      // ring offset 0 is at segment offset 8192: length 0x7ffffff0, type data
      await b.runFixture('scribble.mjs', [name, '8192', 'f0ffff7f01000000']);
      expect(() => channel.tryReceive()).toThrow(code('ERR_CORRUPT'));
      expect(() => channel.receiveSync({ timeout: 10 })).toThrow(code('ERR_CORRUPT'));
    } finally {
      channel.close();
    }
  });

  it('ERR_CORRUPT: a consumer cursor moved ahead of the producer cursor', async () => {
    const name = uniqueName('cursor');
    const channel = b.create(name, { capacity: 4096, unlinkOnClose: false });
    try {
      channel.sendSync('first');
      // head (segment offset 256) := 1 MiB, far past the tail
      await b.runFixture('scribble.mjs', [name, '256', '00001000']);
      // the producer notices as soon as it looks at the head again, before the ring could be full
      let error: unknown;
      for (let i = 0; i < 4096 && error === undefined; i++) {
        try {
          channel.trySend('x');
        } catch (caught) {
          error = caught;
        }
      }
      expect(error).toMatchObject({ code: 'ERR_CORRUPT' });
      // a new producer refuses the cursors at once
      channel.close();
      const next = b.open(name);
      expect(() => next.trySend('x')).toThrow(code('ERR_CORRUPT'));
      next.close();
    } finally {
      channel.close();
    }
  });

  it("ERR_INCOMPATIBLE: opening with another codec than the channel's", () => {
    const name = uniqueName('codec-mismatch');
    const channel = b.create(name, { codec: 'raw' });
    try {
      expect(() => b.open(name, { codec: 'msgpack' })).toThrow(code('ERR_INCOMPATIBLE'));
      const opened = b.open(name);
      opened.close();
    } finally {
      channel.close();
    }
  });

  it('ERR_ENCODE: values the codec cannot encode write nothing', () => {
    const name = uniqueName('encode');
    const channel = b.create<unknown>(name);
    const custom = b.create<unknown>(uniqueName('encode-custom'), {
      codec: {
        encode: () => {
          throw new Error('nope');
        },
        decode: () => null,
      },
    });
    try {
      expect(() => channel.trySend(Symbol('s'))).toThrow(code('ERR_ENCODE'));
      expect(() => channel.trySend(2n ** 70n)).toThrow(code('ERR_ENCODE'));
      expect(() => custom.trySend(1)).toThrow(code('ERR_ENCODE'));
      expect(channel.stats().messagesSent).toBe(0);
      channel.sendSync('still fine');
      const reader = b.open(name);
      expect(reader.tryReceive()).toBe('still fine');
      expect(reader.tryReceive()).toBeUndefined();
      reader.close();
    } finally {
      channel.close();
      custom.close();
    }
  });

  it('ERR_DECODE: a message the decoder rejects is skipped, and the next one arrives', () => {
    const name = uniqueName('decode');
    const channel = b.create(name);
    const reader = b.open<unknown>(name, {
      codec: {
        encode: () => new Uint8Array(),
        decode: (bytes) => {
          if (bytes[0] === 0xa3) throw new Error('no three-letter strings');
          return bytes.length;
        },
      },
    });
    try {
      channel.sendSync('abc');
      channel.sendSync('abcd');
      expect(() => reader.tryReceive()).toThrow(code('ERR_DECODE'));
      expect(reader.tryReceive()).toBe(5);
    } finally {
      reader.close();
      channel.close();
    }
  });

  it('ERR_INCOMPATIBLE: a segment of another version', async () => {
    const versioned = uniqueName('version');
    const channel = b.create(versioned, { unlinkOnClose: false });
    channel.close();
    await b.runFixture('scribble.mjs', [versioned, '4', '63000000']);
    expect(() => b.open(versioned)).toThrow(code('ERR_INCOMPATIBLE'));
  });
});

// POSIX only; test/sysv.test.ts has the System V counterparts.

it('ERR_TIMEOUT: open of a channel whose creator never finished initialising', () => {
  const name = uniqueName('half');
  writeFileSync(`/dev/shm/${name}`, Buffer.alloc(8192 + 4096));
  chmodSync(`/dev/shm/${name}`, 0o600);
  expect(() => Channel.open(name, { timeout: 100 })).toThrow(code('ERR_TIMEOUT'));
});

it('ERR_INCOMPATIBLE: a file in /dev/shm that is not a shmchan segment', () => {
  const name = uniqueName('foreign');
  writeFileSync(`/dev/shm/${name}`, Buffer.alloc(16384, 0xab));
  expect(() => Channel.open(name)).toThrow(code('ERR_INCOMPATIBLE'));
});

it('ERR_SYSTEM carries errno and syscall: shm_open without a free file descriptor', async () => {
  const name = uniqueName('emfile');
  const outcome = await new Promise<string>((resolve) => {
    const child = spawn('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${path.join(fixturesDir, 'exhaust-fds.mjs')}" ${name}`], {
      cwd: packageRoot,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', () => resolve(out));
  });
  expect(JSON.parse(outcome)).toMatchObject({ result: 'error', code: 'ERR_SYSTEM', errno: 'EMFILE', syscall: 'shm_open' });
});

it('every error is a ShmChanError with a code', () => {
  try {
    Channel.open(uniqueName('nothing'));
    expect.unreachable();
  } catch (error) {
    expect(error).toBeInstanceOf(ShmChanError);
    expect(error).toBeInstanceOf(Error);
    expect((error as ShmChanError).name).toBe('ShmChanError');
  }
});
