// What only the System V backend has: keys, ipcs/ipcrm, semaphore sets. The
// Channel suite itself runs for both backends in the other files.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Channel, ShmChanError, list } from '../dist/index.js';
import { cleanupChannels, killFixtures, sysvKeyOf, sysvRows, trackKey, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const b = using('sysv');
const code = (c: string) => expect.objectContaining({ code: c });
const hex = (key: number) => `0x${key.toString(16).padStart(8, '0')}`;
const rowOf = (kind: 'shm' | 'sem', key: number) => sysvRows(kind).find((row) => row.key === key);
const rowById = (kind: 'shm' | 'sem', id: number) => sysvRows(kind).find((row) => row.id === id);
/** A key of our own, unlikely to be anyone else's; cleanupChannels() removes what has it. */
const randomKey = () => trackKey(1 + Math.floor(Math.random() * 0xfffffffe));
const ipcrm = (...args: string[]) => execFileSync('ipcrm', args);

it('shows the segment and its semaphore set in /proc/sysvipc and ipcs with the right permissions, and removes both on close', () => {
  const name = uniqueName('visible');
  for (const permissions of [undefined, 0o640]) {
    const channel = b.create(name, { capacity: 16384, permissions });
    const key = channel.key!;
    const expected = permissions ?? 0o600;
    const shm = rowOf('shm', key)!;
    expect(shm.perms & 0o777).toBe(expected);
    expect(Number(shm.fields[3])).toBe(8192 + 16384); // size
    expect(Number(shm.fields[6])).toBe(1); // nattch
    const sem = rowOf('sem', key)!;
    expect(sem.perms & 0o777).toBe(expected);
    expect(Number(sem.fields[3])).toBe(324); // nsems: 64 sleeper slots per wait line, open, replacing, creator, consumer, 64 producers, 128 sleeper-slot locks
    const octal = expected.toString(8);
    expect(execFileSync('ipcs', ['-m'], { encoding: 'utf8' })).toMatch(new RegExp(`^${hex(key)}\\s+${shm.id}\\s+\\S+\\s+${octal}\\s+24576\\s+1\\b`, 'm'));
    expect(execFileSync('ipcs', ['-s'], { encoding: 'utf8' })).toMatch(new RegExp(`^${hex(key)}\\s+${sem.id}\\s+\\S+\\s+${octal}\\s+324\\b`, 'm'));
    channel.close();
    expect(rowById('shm', shm.id)).toBeUndefined();
    expect(rowById('sem', sem.id)).toBeUndefined();
  }
});

it('removes the semaphore set when the creator closes, and the segment when the last process detaches', () => {
  const name = uniqueName('last-out');
  const creator = b.create(name);
  const opener = b.open(name);
  const shm = rowOf('shm', creator.key!)!;
  const sem = rowOf('sem', creator.key!)!;
  creator.sendSync('kept');
  creator.close();
  expect(rowById('sem', sem.id)).toBeUndefined();
  expect(rowById('shm', shm.id)!.perms & 0o1000).toBe(0o1000); // SHM_DEST: goes at the last detach
  expect(() => b.open(name)).toThrow(code('ERR_CHANNEL_NOT_FOUND'));
  expect(opener.tryReceive()).toBe('kept');
  opener.close();
  expect(rowById('shm', shm.id)).toBeUndefined();
});

it('derives the key from the name as the README says, and takes a number or { path, projectId } instead', () => {
  const name = uniqueName('keys');
  const derived = b.create(name);
  expect(derived.key).toBe(sysvKeyOf(name));
  derived.close();

  const key = randomKey();
  const numbered = b.create(name, { key });
  expect(numbered.key).toBe(key);
  expect(() => b.open(name)).toThrow(code('ERR_CHANNEL_NOT_FOUND')); // a custom key must be given again
  const opened = b.open(name, { key });
  numbered.sendSync('by key');
  expect(opened.receiveSync()).toBe('by key');
  opened.close();
  expect(b.unlink(name)).toBe(false);
  expect(b.unlink(name, { key })).toBe(true);
  numbered.close();

  const negative = b.create(name, { key: trackKey(-12345) });
  expect(negative.key).toBe(2 ** 32 - 12345); // key_t bits, shown unsigned as ipcs does
  negative.close();

  const dir = mkdtempSync(path.join(tmpdir(), 'shmchan-ftok-'));
  try {
    const file = path.join(dir, 'anchor');
    writeFileSync(file, '');
    const { ino, dev } = statSync(file);
    const ftokKey = trackKey((((42 & 0xff) << 24) | ((dev & 0xff) << 16) | (ino & 0xffff)) >>> 0);
    const byPath = b.create(name, { key: { path: file, projectId: 42 } });
    expect(byPath.key).toBe(ftokKey);
    const again = b.open(name, { key: { path: file, projectId: 42 } });
    again.close();
    byPath.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

it('rejects bad keys, a key for the POSIX backend, and a path ftok cannot use', () => {
  const name = uniqueName('bad-key');
  for (const key of [0, 1.5, 2 ** 32, -(2 ** 31) - 1, '42', null, { path: '' , projectId: 1 }, { path: '/tmp', projectId: 0 }, { path: '/tmp', projectId: 256 }, { path: '/tmp' }])
    expect(() => b.create(name, { key: key as never })).toThrow(code('ERR_INVALID_ARG'));
  expect(() => Channel.create(name, { key: 42 })).toThrow(code('ERR_INVALID_ARG'));
  expect(() => Channel.open(name, { key: 42 })).toThrow(code('ERR_INVALID_ARG'));
  try {
    b.create(name, { key: { path: '/nonexistent/shmchan', projectId: 1 } });
    expect.unreachable();
  } catch (error) {
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG', errno: 'ENOENT', syscall: 'ftok' });
  }
  expect(b.exists(name)).toBe(false);
});

it('reports a key that collides with another channel as ERR_CHANNEL_EXISTS naming both', () => {
  const first = uniqueName('first');
  const second = uniqueName('second');
  const key = randomKey();
  const channel = b.create(first, { key });
  try {
    for (const attempt of [
      () => b.create(second, { key }),
      () => b.open(second, { key }),
      () => b.unlink(second, { key }),
    ]) {
      expect(attempt).toThrow(code('ERR_CHANNEL_EXISTS'));
      expect(attempt).toThrow(new RegExp(`'${second}'.*${hex(key)}.*'${first}'`));
    }
    expect(() => b.create(first, { key })).toThrow(/already exists/);
    channel.sendSync('untouched');
    expect(channel.tryReceive()).toBe('untouched');
  } finally {
    channel.close();
  }
});

it('gives the users of a segment removed with ipcrm a clear error, sync and async, in other processes and this one', async () => {
  const waiting = uniqueName('rm-waiting');
  const blocked = uniqueName('rm-blocked');
  const consumerSide = b.create(waiting, { capacity: 4096 });
  const producerSide = b.create(blocked, { capacity: 4096 });
  try {
    expect(producerSide.tryReceive()).toBeUndefined(); // this process is blocked's consumer
    const consumer = b.startFixture('receive-outcome.mjs', [waiting, 'async']);
    const producer = b.startFixture('blocked-producer.mjs', [blocked, 'sync']);
    await consumer.line('waiting');
    await producer.line('full');
    for (const channel of [consumerSide, producerSide])
      ipcrm('-m', String(rowOf('shm', channel.key!)!.id), '-s', String(rowOf('sem', channel.key!)!.id));

    for (const fixture of [consumer, producer]) {
      expect((await fixture.exited).code).toBe(0);
      const outcome = JSON.parse(fixture.stdout().trim().split('\n').pop()!);
      expect(outcome).toMatchObject({ result: 'error', code: 'ERR_SYSTEM', errno: 'EIDRM', syscall: 'semtimedop' });
      expect(outcome.message).toMatch(/was removed while in use.*ipcrm/);
    }
    // here too (taking over the dead fixture's consumer role): waiting fails at
    // once, while the mapping itself still works
    await expect(consumerSide.receive({ timeout: 10_000 })).rejects.toMatchObject({ code: 'ERR_SYSTEM', errno: 'EIDRM' });
    expect(() => consumerSide.receiveSync({ timeout: 10_000 })).toThrow(expect.objectContaining({ errno: 'EIDRM' }));
    expect(consumerSide.trySend('into the mapping')).toBe(true);
    expect(consumerSide.tryReceive()).toBe('into the mapping');
    expect(producerSide.tryReceive()).toBe('x'.repeat(100));
  } finally {
    consumerSide.close();
    producerSide.close();
  }
  expect(rowOf('shm', consumerSide.key!)).toBeUndefined();
  expect(rowOf('sem', producerSide.key!)).toBeUndefined();
});

it('keeps working after a bare ipcrm -m, and the last process out removes the semaphore set', () => {
  const name = uniqueName('rm-segment');
  const creator = b.create(name, { unlinkOnClose: false });
  const opener = b.open(name);
  const sem = rowOf('sem', creator.key!)!;
  ipcrm('-m', String(rowOf('shm', creator.key!)!.id));
  expect(() => b.open(name)).toThrow(code('ERR_CHANNEL_NOT_FOUND'));
  creator.sendSync('still delivered');
  expect(opener.receiveSync({ timeout: 10_000 })).toBe('still delivered');
  creator.close();
  expect(rowById('sem', sem.id)).toBeDefined();
  opener.close();
  expect(rowById('sem', sem.id)).toBeUndefined();
});

it('names a semaphore set left behind by ipcrm -m, and Channel.unlink removes it', () => {
  const name = uniqueName('leftover');
  b.create(name, { unlinkOnClose: false }).close();
  ipcrm('-m', String(rowOf('shm', sysvKeyOf(name))!.id)); // nobody attached: the set stays
  expect(rowOf('sem', sysvKeyOf(name))).toBeDefined();
  expect(() => b.create(name)).toThrow(code('ERR_CHANNEL_EXISTS'));
  expect(() => b.create(name)).toThrow(new RegExp(`semaphore set.*ipcrm -S ${hex(sysvKeyOf(name))}`));
  expect(b.unlink(name)).toBe(true);
  expect(b.exists(name)).toBe(false);
  b.create(name).close();
});

it('times out opening a segment that was never initialised, and Channel.unlink removes it', () => {
  const name = uniqueName('unfinished');
  const id = Number(/id: (\d+)/.exec(execFileSync('ipcmk', ['-M', String(8192 + 4096), '-p', '0600'], { encoding: 'utf8' }))![1]);
  const key = trackKey(rowById('shm', id)!.key);
  expect(() => b.open(name, { key, timeout: 100 })).toThrow(code('ERR_TIMEOUT'));
  expect(b.unlink(name, { key })).toBe(true);
  expect(rowById('shm', id)).toBeUndefined();
});

it('refuses to open or remove a segment that is not a shmchan channel', () => {
  const name = uniqueName('foreign');
  const id = Number(/id: (\d+)/.exec(execFileSync('ipcmk', ['-M', '100', '-p', '0600'], { encoding: 'utf8' }))![1]);
  const key = trackKey(rowById('shm', id)!.key);
  expect(() => b.open(name, { key })).toThrow(code('ERR_INCOMPATIBLE'));
  expect(() => b.unlink(name, { key })).toThrow(code('ERR_INCOMPATIBLE'));
  expect(() => b.create(name, { key })).toThrow(/not a shmchan channel/);
  expect(rowById('shm', id)).toBeDefined();
});

it('wakes a new consumer after the old one was killed while asleep (its sleeper slot is stale)', async () => {
  const name = uniqueName('stale-sleeper');
  const channel = b.create(name);
  try {
    const sleeper = b.startFixture('receive-outcome.mjs', [name, 'async']);
    await sleeper.line('waiting');
    await new Promise((resolve) => setTimeout(resolve, 100)); // let it fall asleep
    sleeper.child.kill('SIGKILL');
    await sleeper.exited;
    const sender = b.startFixture('send-after.mjs', [name, '200', '"after the death"']);
    expect(await channel.receive({ timeout: 30_000 })).toBe('after the death');
    expect((await sender.exited).code).toBe(0);
  } finally {
    channel.close();
  }
});

it('errors from System V calls are ShmChanErrors', () => {
  try {
    b.open(uniqueName('nothing'));
    expect.unreachable();
  } catch (error) {
    expect(error).toBeInstanceOf(ShmChanError);
    expect(error).toMatchObject({ code: 'ERR_CHANNEL_NOT_FOUND', errno: 'ENOENT' });
  }
});

it('list() and `shmchan stat` show System V channels with their key and permissions, and forget them after close', () => {
  const name = uniqueName('sysv-listed');
  const channel = b.create(name, { mode: 'mpsc', permissions: 0o640 });
  try {
    const entry = list().find((c) => c.name === name);
    expect(entry).toMatchObject({ backend: 'sysv', mode: 'mpsc', key: channel.key, permissions: 0o640, stale: false });
    const stat = JSON.parse(execFileSync(process.execPath, ['bin/shmchan.js', 'stat', name, '--json'], { encoding: 'utf8' }));
    expect(stat).toMatchObject({ name, backend: 'sysv', key: channel.key, mode: 'mpsc' });
  } finally {
    channel.close();
  }
  expect(list().some((c) => c.name === name)).toBe(false);
});
