// The C API (native/include/shmchan.h, examples/c): C programs and Node processes
// on one channel, sharing nothing but its name. The library and the examples are
// built here, into a directory of this test process, as a fresh clone builds them.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { extraCFlags, useCPrograms } from './c-programs';
import { rawMessage } from './fixtures/messages.mjs';
import { backends, deadClaimHex, packageRoot, uniqueName, until, using } from './helpers';
import * as layout from '../dist/core/layout.js';

const { work, lib, bin, start, run } = useCPrograms('c-api');

beforeAll(() => {
  // after useCPrograms' build, which made the library
  execFileSync(
    'cc',
    ['-std=c11', '-Wall', '-Wextra', '-Werror', ...extraCFlags, '-Inative/include', 'test/fixtures/c-results.c', `${lib}/libshmchan.a`, '-lrt', '-o', `${bin}/c-results`],
    { cwd: packageRoot },
  );
}, 300_000);

const words = ['hello', 'grüße', 'Привет', '你好世界', 'こんにちは', '🚀✨', 'e\u0301', 'mañana', '', '\ttab and\rreturn'];
/** Line i: mixed scripts, 0 to ~1.3 KB, so records of many sizes wrap a small ring. */
const line = (i: number) => `${i} ${words[i % words.length]}`.repeat((i % 7) * (i % 13)) || words[i % words.length];
const lines = (count: number, label = '') => Array.from({ length: count }, (_, i) => label + line(i));

const modes = ['spsc', 'mpsc'] as const;

/** errno numbers by name; Node's table lacks two that the C API returns (Linux values). */
const errno: Record<string, number> = { ...constants.errno, ESHUTDOWN: 108, EUSERS: 87 };

it("runs docs/c-api.md's examples as written: the program and the spooler", async () => {
  const section = readFileSync(path.join(packageRoot, 'docs', 'c-api.md'), 'utf8');
  const program = /```c\n([\s\S]*?)```/.exec(section)![1];
  const greetings = uniqueName('readme-greetings');
  writeFileSync(path.join(work, 'readme.c'), program.replace('"greetings"', `"${greetings}"`));
  execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', ...extraCFlags, '-Inative/include', path.join(work, 'readme.c'), `${lib}/libshmchan.a`, '-lrt', '-o', `${bin}/readme`], {
    cwd: packageRoot,
  });
  expect(await run('readme', [])).toMatchObject({ stdout: 'hello\nworld\n2 sent, 2 received\n', stderr: '' });

  const spooler = /```sh\n(examples\/c\/consumer[\s\S]*?)```/.exec(section)![1];
  const script = spooler.replaceAll('examples/c/', `${bin}/`).replaceAll(' spool ', ` ${uniqueName('readme-spool')} `);
  // its own process group, so a failure also stops the consumer it runs in the background
  const shell = spawn('bash', ['-c', script], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  try {
    let stdout = '';
    shell.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const code = await new Promise((resolve) => shell.on('close', resolve));
    expect({ code, stdout }).toEqual({ code: 0, stdout: 'job 1\njob 2\njob 3\n' });
  } finally {
    try {
      process.kill(-shell.pid!, 'SIGKILL');
    } catch {} // the group is gone: everything exited
  }
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);
  const backendFlags = backend === 'sysv' ? ['--sysv'] : [];

  describe.each(modes)('%s', (mode) => {
    const modeFlags = mode === 'mpsc' ? ['--mpsc'] : [];

    it("a C producer's lines reach a Node consumer as the same strings, in order", async () => {
      const name = uniqueName(`c-lines-${mode}`);
      const channel = b.create(name, { mode, capacity: 16 * 1024 });
      try {
        const sent = lines(5000);
        const consumer = b.startFixture('lines-peer.mjs', ['recv', name]);
        await run('producer', [name, ...backendFlags], sent.join('\n') + '\n');
        expect((await consumer.exited).code).toBe(0);
        expect(JSON.parse(consumer.stdout()).received).toEqual(sent);
        expect(channel.stats()).toMatchObject({ messagesSent: sent.length, messagesReceived: sent.length, used: 0, ended: true });
      } finally {
        channel.close();
      }
    });

    it("a Node producer's raw messages reach a C consumer byte for byte", async () => {
      const name = uniqueName(`c-raw-${mode}`);
      const count = 3000;
      const consumer = start('consumer', [name, '--create', '--raw', '--capacity', '16384', '--hex', ...modeFlags, ...backendFlags]);
      const producer = b.startFixture('producer.mjs', [name, String(count), 'raw']);
      expect((await producer.exited).code).toBe(0);
      const { code, stdout, stderr } = await consumer.done;
      expect(code, stderr).toBe(0);
      const expected = Array.from({ length: count }, (_, i) => rawMessage(i).toString('hex'));
      const received = stdout.split('\n').slice(0, -1);
      expect(received.length).toBe(count);
      for (let i = 0; i < count; i++) if (received[i] !== expected[i]) expect({ i, got: received[i] }).toEqual({ i, got: expected[i] });
      expect(b.exists(name)).toBe(false); // the creating C consumer removed it
    });
  });

  it('several C producers at once on an mpsc channel: every line arrives once, in its producer\'s order', async () => {
    const name = uniqueName('c-mpsc-many');
    const channel = b.create(name, { mode: 'mpsc', capacity: 16 * 1024 });
    try {
      const consumer = b.startFixture('lines-peer.mjs', ['recv', name]);
      const sent = [0, 1, 2, 3].map((id) => lines(3000, `p${id}:`));
      await Promise.all(sent.map((input) => run('producer', [name, '--keep-open', ...backendFlags], input.join('\n') + '\n')));
      await run('producer', [name, ...backendFlags]); // no lines: it only ends the stream
      expect((await consumer.exited).code).toBe(0);
      const received: string[] = JSON.parse(consumer.stdout()).received;
      expect(received.length).toBe(4 * 3000);
      for (let id = 0; id < 4; id++) expect(received.filter((l) => l.startsWith(`p${id}:`))).toEqual(sent[id]);
      expect(channel.stats()).toMatchObject({ messagesSent: 12_000, messagesReceived: 12_000, used: 0, ended: true });
    } finally {
      channel.close();
    }
  });

  it('C producers killed with SIGKILL mid-stream never block an mpsc channel, 5 times', async () => {
    for (let round = 0; round < 5; round++) {
      const name = uniqueName(`c-mpsc-kill-${round}`);
      const channel = b.create(name, { mode: 'mpsc', capacity: 16 * 1024 });
      try {
        const consumer = b.startFixture('lines-peer.mjs', ['recv', name]);
        const doomed = Array.from({ length: 100_000 }, (_, i) => `victim:${i}`);
        const victim = start('producer', [name, '--keep-open', ...backendFlags], doomed.join('\n') + '\n');
        const others = [1, 2].map((id) => lines(2000, `p${id}:`));
        const finished = Promise.all(others.map((input) => run('producer', [name, '--keep-open', ...backendFlags], input.join('\n') + '\n')));
        while (channel.stats().messagesSent === 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        victim.child.kill('SIGKILL');
        await victim.done;
        await finished;
        await run('producer', [name, ...backendFlags]);
        expect((await consumer.exited).code).toBe(0);
        const received: string[] = JSON.parse(consumer.stdout()).received;
        for (let id = 1; id <= 2; id++) expect(received.filter((l) => l.startsWith(`p${id}:`))).toEqual(others[id - 1]);
        const fromVictim = received.filter((l) => l.startsWith('victim:'));
        expect(fromVictim).toEqual(doomed.slice(0, fromVictim.length)); // a gap-free prefix
        expect(channel.stats().messagesReceived).toBe(received.length);
      } finally {
        channel.close();
      }
    }
  });

  it('msgpack strings of every size class written from C decode to the same strings in Node', async () => {
    const name = uniqueName('c-unicode');
    const channel = b.create<string>(name);
    try {
      // fixstr up to 31 bytes, str8 to 255, str16 to 65535, str32 beyond
      const sent = ['', 'a', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(255), 'é'.repeat(128), 'w'.repeat(65535), 'v'.repeat(65536)];
      sent.push(...words, '🚀'.repeat(30_000), 'ﬃ Ǆ ẞ \u0000 nul', 'مرحبا بالعالم', '𝄞 music');
      await run('producer', [name, ...backendFlags], sent.join('\n')); // the last line has no newline
      const received: string[] = [];
      for await (const value of channel) received.push(value);
      expect(received).toEqual(sent);
    } finally {
      channel.close();
    }
  });

  it('the C results: errno values for every failure, and no message lost to a small buffer', async () => {
    const name = uniqueName('c-results');
    const { stdout } = await run('c-results', [name, ...backendFlags]);
    const results = JSON.parse(stdout);
    expect(results).toEqual({
      openMissing: -errno.ENOENT,
      badName: -errno.EINVAL,
      badCapacity: -errno.EINVAL,
      create: 0,
      createAgain: -errno.EEXIST,
      capacity: 4096,
      maxMessageSize: 1024,
      tryReceiveEmpty: -errno.EAGAIN,
      receiveNoWait: -errno.ETIMEDOUT,
      receiveTimeout: -errno.ETIMEDOUT,
      sendTooLarge: -errno.EMSGSIZE,
      sendMax: 0,
      receiveMax: 1024,
      send: 0,
      receiveSmallBuffer: -errno.EMSGSIZE,
      receiveAfterSmallBuffer: 13,
      sameBytes: 1,
      sendEmpty: 0,
      receiveEmpty: 0,
      open: 0,
      secondConsumer: -errno.EBUSY,
      secondProducer: -errno.EBUSY,
      trySendFull: -errno.EAGAIN,
      sentUntilFull: results.drained,
      sendFullNoWait: -errno.ETIMEDOUT,
      end: 0,
      endAgain: 0,
      sendAfterEnd: -errno.ESHUTDOWN,
      drained: expect.any(Number),
      receiveAfterEnd: -errno.ESHUTDOWN,
      stats: 0,
      messagesSent: results.drained + 3,
      messagesReceived: results.drained + 3,
      ended: 1,
      unlink: 0,
      unlinkAgain: -errno.ENOENT,
      createMpsc: 0,
      mode: 2,
      mpscProducers: 64,
      tooManyProducers: -errno.EUSERS,
      mpscReceived: 64,
      mpscRemoved: -errno.ENOENT,
    });
    expect(results.drained).toBeGreaterThan(0);
  });

  it('C and Node respect each other\'s roles, and a dead C consumer\'s role is taken over', async () => {
    const name = uniqueName('c-roles');
    const channel = b.create(name, { codec: 'raw', unlinkOnClose: false });
    try {
      // Node holds both spsc roles: the C programs are refused
      channel.sendSync(Buffer.from('first'));
      expect(channel.tryReceive()).toEqual(Buffer.from('first'));
      const refusedConsumer = await start('consumer', [name, ...backendFlags]).done;
      expect(refusedConsumer.code).toBe(1);
      expect(refusedConsumer.stderr).toContain('Device or resource busy');
      const refusedProducer = await start('producer', [name, '--raw', ...backendFlags], 'x\n').done;
      expect(refusedProducer.code).toBe(1);
      expect(refusedProducer.stderr).toContain('Device or resource busy');
      channel.close();

      // a C consumer holds the role until it is killed; then Node takes it over
      const reopened = b.open(name, { codec: 'raw' });
      try {
        const consumer = start('consumer', [name, '--hex', ...backendFlags]);
        while (reopened.stats().consumerPid !== consumer.child.pid) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(() => reopened.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
        consumer.child.kill('SIGKILL');
        await consumer.done;
        reopened.sendSync(Buffer.from('after the C consumer died'));
        expect(reopened.receiveSync({ timeout: 10_000 })).toEqual(Buffer.from('after the C consumer died'));
      } finally {
        reopened.close();
      }
    } finally {
      channel.close();
    }
  });
  it("a C consumer passes a dead producer's claim that never moved the tail, and moves the tail past it too", async () => {
    const name = uniqueName('c-dead-claim-tail');
    const channel = b.create<Buffer>(name, { mode: 'mpsc', capacity: 4096, codec: 'raw' });
    try {
      // its claimant died before it moved the tail: the tail is still 0
      await b.runFixture('scribble.mjs', [name, '8192', deadClaimHex()]);
      const consumer = start('consumer', [name, '--hex', ...backendFlags]);
      // the C consumer finds the claim dead and passes it before any producer meets it
      const i32: Int32Array = channel['ring'].i32;
      await until(() => Atomics.load(i32, layout.OFF_HEAD >> 2) === 64, 'the C consumer never passed the dead claim');
      // a head past the tail would be a corrupt ring for every producer after
      expect(Atomics.load(i32, layout.OFF_TAIL >> 2)).toBe(64);
      channel.sendSync(Buffer.from('after the dead claim'), { timeout: 10_000 });
      channel.end();
      expect(await consumer.done).toEqual({ code: 0, stdout: Buffer.from('after the dead claim').toString('hex') + '\n', stderr: '' });
    } finally {
      channel.close();
    }
  });
});
