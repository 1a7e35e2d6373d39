import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { cleanupChannels, killFixtures, packageRoot, runFixture, startFixture, uniqueName } from './helpers';

const bin = path.join(packageRoot, 'bin', 'shmchan.js');
const work = mkdtempSync(path.join(tmpdir(), 'shmchan-cli-'));
const running = new Set<ChildProcess>();

afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  killFixtures();
  cleanupChannels();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function finish(child: ChildProcess): Promise<Result> {
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

/** Runs `shmchan ARGS` in a new process, with `input` on its stdin. */
function shmchan(args: string[], input?: string | Buffer): Promise<Result> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: packageRoot, stdio: 'pipe' });
  child.stdin!.end(input);
  return finish(child);
}

/** Runs a shell command line; `shmchan` in it is this package's CLI. */
function shell(commandLine: string): Promise<Result> {
  const command = commandLine.replaceAll('shmchan ', `"${process.execPath}" "${bin}" `);
  return finish(spawn('sh', ['-c', command], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] }));
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** A runtime or usage error: one line on stderr, no stack trace. */
function expectOneLineError(result: Result, status: number, pattern: RegExp): void {
  expect(result.code).toBe(status);
  expect(result.stderr.trimEnd()).toMatch(pattern);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

describe('send and recv', () => {
  it('shmchan send X --create < f and shmchan recv X > g, in separate processes, give identical files', async () => {
    const name = uniqueName('cli-file');
    writeFileSync(path.join(work, 'f'), randomBytes(24 * 1024 * 1024 + 5));
    const [send, recv] = await Promise.all([shell(`shmchan send ${name} --create < f`), shell(`shmchan recv ${name} > g`)]);
    expect(send).toMatchObject({ code: 0, stderr: '' });
    expect(recv).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(path.join(work, 'g'))).toBe(sha256(path.join(work, 'f')));
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  });

  it('works with the receiver creating the channel and the sender started later', async () => {
    const name = uniqueName('cli-recv-creates');
    writeFileSync(path.join(work, 'f2'), randomBytes(3 * 1024 * 1024));
    const recv = shell(`shmchan recv ${name} --create --capacity 64K > g2`);
    const send = await shell(`shmchan send ${name} < f2`);
    expect(send).toMatchObject({ code: 0, stderr: '' });
    expect(await recv).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(path.join(work, 'g2'))).toBe(sha256(path.join(work, 'f2')));
  });

  it('keeps what was sent until recv comes, and recv removes the channel', async () => {
    const name = uniqueName('cli-later');
    expect(await shmchan(['send', name, '--create'], 'sent before recv started\n')).toMatchObject({ code: 0 });
    expect(existsSync(`/dev/shm/${name}`)).toBe(true);
    expect(await shmchan(['recv', name])).toMatchObject({ code: 0, stdout: 'sent before recv started\n' });
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  });

  it('--lines round trip: one message per line, UTF-8, empty lines and CRLF kept', async () => {
    const name = uniqueName('cli-lines');
    const text = 'first\n\nwörld 🚀\r\n' + 'x'.repeat(100_000) + '\nlast without newline';
    const [send, recv] = await Promise.all([shmchan(['send', name, '--create', '--lines'], text), shmchan(['recv', name, '--lines'])]);
    expect(send).toMatchObject({ code: 0, stderr: '' });
    expect(recv).toMatchObject({ code: 0, stderr: '' });
    expect(recv.stdout).toBe(`${text}\n`);
  }, 60_000);

  it('--lines talks to Channel programs: strings both ways, other values printed as JSON', async () => {
    const name = uniqueName('cli-lines-interop');
    const recv = shmchan(['recv', name, '--create', '--lines']);
    const values = ['plain', '', 42, null, { id: 1, tags: ['a'] }, [1, 'two'], true];
    await runFixture('lines-peer.mjs', ['send', name, JSON.stringify(values)]);
    expect(await recv).toMatchObject({
      code: 0,
      stdout: 'plain\n\n42\nnull\n{"id":1,"tags":["a"]}\n[1,"two"]\ntrue\n',
    });

    const other = uniqueName('cli-lines-to-program');
    const program = startFixture('lines-peer.mjs', ['recv', other]);
    expect(await shmchan(['send', other, '--create', '--lines'], 'one\ntwo 🚀\n\nfour\n')).toMatchObject({ code: 0 });
    const { received } = JSON.parse(await program.line('received'));
    expect(received).toEqual(['one', 'two 🚀', '', 'four']);
  });

  it('--lines on one side only is a clear error', async () => {
    const name = uniqueName('cli-lines-mismatch');
    expect(await shmchan(['send', name, '--create'], 'bytes')).toMatchObject({ code: 0 });
    expectOneLineError(await shmchan(['recv', name, '--lines']), 1, /carries raw bytes, not lines: leave out --lines/);
  });

  it('a sender killed mid-stream makes recv fail with exit status 1 after writing what arrived', async () => {
    const name = uniqueName('cli-sender-dies');
    const sender = spawn(process.execPath, [bin, 'send', name, '--create'], { stdio: ['pipe', 'ignore', 'ignore'] });
    running.add(sender);
    sender.stdin!.write('before the crash\n');
    const recv = shmchan(['recv', name]);
    const probe = await (async () => {
      for (;;) {
        try {
          const channel = Channel.open(name);
          if (channel.stats().messagesReceived > 0) return channel;
          channel.close();
        } catch {
          // not created yet
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    sender.kill('SIGKILL');
    const result = await recv;
    probe.close();
    expect(result.stdout).toBe('before the crash\n');
    expectOneLineError(result, 1, /^shmchan recv: channel '.*': the writing side went away without ending the stream/);
  });

  it('Ctrl-C on a waiting recv --create removes the channel and ends with SIGINT', async () => {
    const name = uniqueName('cli-interrupt');
    const child = spawn(process.execPath, [bin, 'recv', name, '--create'], { stdio: 'ignore' });
    const done = finish(child);
    while (!existsSync(`/dev/shm/${name}`)) await new Promise((resolve) => setTimeout(resolve, 5));
    child.kill('SIGINT');
    expect(await done).toMatchObject({ signal: 'SIGINT' });
    expect(existsSync(`/dev/shm/${name}`)).toBe(false);
  });
});

describe('ls, stat, rm', () => {
  it('ls shows channels as a table and as JSON', async () => {
    const name = uniqueName('cli-ls');
    const channel = Channel.create(name, { capacity: 64 * 1024 });
    try {
      const table = await shmchan(['ls']);
      expect(table.code).toBe(0);
      expect(table.stdout.split('\n')[0].split(/\s+/)).toEqual(['NAME', 'BACKEND', 'MODE', 'SIZE', 'USED', 'PRODUCERS', 'CONSUMERS', 'CONSUMER', 'STALE']);
      const row = table.stdout.split('\n').find((line) => line.startsWith(`${name} `));
      expect(row?.split(/\s+/)).toEqual([name, 'posix', 'spsc', '64', 'KiB', '0', 'B', '0', '0', '-', 'no']);

      const json = await shmchan(['ls', '--json']);
      const entry = JSON.parse(json.stdout).find((c: { name: string }) => c.name === name);
      expect(entry).toEqual({
        name,
        backend: 'posix',
        mode: 'spsc',
        capacity: 65536,
        used: 0,
        producers: 0,
        consumers: 0,
        consumerPid: null,
        creatorPid: process.pid,
        permissions: 0o600,
        stale: false,
      });
    } finally {
      channel.close();
    }
  });

  it('ls and stat show the live consumers of a broadcast channel', async () => {
    const name = uniqueName('cli-consumers');
    const channel = Channel.create(name, { capacity: 4096, mode: 'broadcast' });
    const subscribers = [Channel.open(name), Channel.open(name)];
    try {
      for (const s of subscribers) expect(s.tryReceive()).toBeUndefined();
      const table = await shmchan(['ls']);
      const row = table.stdout.split('\n').find((line) => line.startsWith(`${name} `));
      expect(row?.split(/\s+/).slice(2, 8)).toEqual(['broadcast', '4', 'KiB', '0', 'B', '0']);
      expect(row?.split(/\s+/)[8]).toBe('2');
      const text = await shmchan(['stat', name]);
      expect(text.stdout).toMatch(/^consumers +2$/m);
      subscribers[0].close();
      expect(JSON.parse((await shmchan(['stat', name, '--json'])).stdout)).toMatchObject({ mode: 'broadcast', consumers: 1 });
    } finally {
      for (const s of subscribers) s.close();
      channel.close();
    }
  });

  it('stat shows the header and counters, as text and as JSON', async () => {
    const name = uniqueName('cli-stat');
    const channel = Channel.create(name, { capacity: 4096, maxMessageSize: 1000 });
    try {
      channel.sendSync('hello');
      const text = await shmchan(['stat', `/${name}`]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(new RegExp(`^name +${name}$`, 'm'));
      expect(text.stdout).toMatch(/^codec +msgpack$/m);
      expect(text.stdout).toMatch(/^max message +1000 B \(1000 bytes\)$/m);
      expect(text.stdout).toMatch(/^permissions +0600$/m);
      expect(text.stdout).toMatch(/^messages sent +1$/m);

      const stats = JSON.parse((await shmchan(['stat', name, '--json'])).stdout);
      expect(stats).toMatchObject({
        name,
        backend: 'posix',
        mode: 'spsc',
        codec: 'msgpack',
        capacity: 4096,
        maxMessageSize: 1000,
        messagesSent: 1,
        messagesReceived: 0,
        bytesSent: 6,
        creatorPid: process.pid,
        ended: false,
        stale: false,
      });
      expect(Date.parse(stats.createdAt)).toBeGreaterThan(Date.parse('2020-01-01'));
    } finally {
      channel.close();
    }
  });

  it('rm removes channels, reports a missing one, and leaves foreign files alone', async () => {
    const [a, b] = [uniqueName('cli-rm-a'), uniqueName('cli-rm-b')];
    Channel.create(a, { unlinkOnClose: false }).close();
    Channel.create(b, { unlinkOnClose: false }).close();
    expect(await shmchan(['rm', a, `/${b}`])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(existsSync(`/dev/shm/${a}`) || existsSync(`/dev/shm/${b}`)).toBe(false);

    const kept = uniqueName('cli-rm-kept');
    Channel.create(kept, { unlinkOnClose: false }).close();
    const missing = await shmchan(['rm', uniqueName('cli-rm-missing'), kept]);
    expectOneLineError(missing, 1, /^shmchan rm: channel '.*-cli-rm-missing-\d+' does not exist$/);
    expect(existsSync(`/dev/shm/${kept}`)).toBe(false); // the others are still removed

    const foreign = uniqueName('cli-rm-foreign');
    writeFileSync(`/dev/shm/${foreign}`, Buffer.alloc(16384, 0xab));
    expectOneLineError(await shmchan(['rm', foreign]), 1, /is not a shmchan channel; not removed/);
    expect(existsSync(`/dev/shm/${foreign}`)).toBe(true);
  });

  it('rm --stale NAME... removes only the stale ones among them', async () => {
    const stale = uniqueName('cli-stale');
    await runFixture('stale-channel.mjs', [stale]);
    const live = uniqueName('cli-live');
    const channel = Channel.create(live);
    try {
      const result = await shmchan(['rm', '--stale', stale, live]);
      expect(result).toMatchObject({ code: 0, stdout: `removed ${stale}\n`, stderr: '' });
      expect(existsSync(`/dev/shm/${stale}`)).toBe(false);
      expect(existsSync(`/dev/shm/${live}`)).toBe(true);
    } finally {
      channel.close();
    }
  });
});

describe('usage, help and exit status', () => {
  it('bad usage exits with 2 and one line on stderr', async () => {
    expect((await shmchan([])).code).toBe(2);
    expectOneLineError(await shmchan(['frobnicate']), 2, /^shmchan: unknown command 'frobnicate'/);
    expectOneLineError(await shmchan(['ls', '--bogus']), 2, /^shmchan ls: unknown option '--bogus'/);
    expectOneLineError(await shmchan(['ls', 'extra']), 2, /^shmchan ls: unexpected argument 'extra'/);
    expectOneLineError(await shmchan(['stat']), 2, /^shmchan stat: missing NAME/);
    expectOneLineError(await shmchan(['rm']), 2, /^shmchan rm: missing NAME/);
    expectOneLineError(await shmchan(['send']), 2, /^shmchan send: missing NAME/);
    expectOneLineError(await shmchan(['recv', 'a', 'b']), 2, /^shmchan recv: unexpected argument 'b'/);
    expectOneLineError(await shmchan(['send', 'x', '--create', '--capacity', 'lots']), 2, /--capacity must be a number of bytes/);
    expectOneLineError(await shmchan(['send', 'x', '--capacity', '1M']), 2, /--capacity applies only with --create/);
    expectOneLineError(await shmchan(['recv', 'x', '--timeout']), 2, /^shmchan recv: .*--timeout/);
    expectOneLineError(await shmchan(['stat', 'no/slashes']), 2, /^shmchan stat: invalid channel name/);
  });

  it('a missing channel is a runtime error: exit status 1, one line on stderr', async () => {
    const name = uniqueName('cli-missing');
    expectOneLineError(await shmchan(['stat', name]), 1, new RegExp(`^shmchan stat: channel '${name}' does not exist$`));
    expectOneLineError(await shmchan(['recv', name, '--timeout', '0']), 1, new RegExp(`^shmchan recv: channel '${name}' did not appear`));
    expectOneLineError(await shmchan(['send', name, '--timeout', '10'], 'x'), 1, new RegExp(`^shmchan send: channel '${name}' did not appear`));
    const exists = uniqueName('cli-exists');
    const channel = Channel.create(exists);
    try {
      expectOneLineError(await shmchan(['send', exists, '--create'], 'x'), 1, /already exists: leave out --create/);
    } finally {
      channel.close();
    }
  });

  it('--help works for the CLI and every command', async () => {
    const overview = await shmchan(['--help']);
    expect(overview).toMatchObject({ code: 0, stderr: '' });
    for (const command of ['ls', 'stat', 'rm', 'send', 'recv', 'demo']) {
      expect(overview.stdout).toContain(`  ${command}`);
      for (const flag of ['--help', '-h']) {
        const help = await shmchan([command, flag]);
        expect(help).toMatchObject({ code: 0, stderr: '' });
        expect(help.stdout).toMatch(new RegExp(`^usage: shmchan ${command}`));
      }
    }
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v']) expect(await shmchan([flag])).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});
