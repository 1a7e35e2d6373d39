// What keeps a process alive: a pending wait does, unless its handle was
// unref()'d; ref() undoes that. Real processes; nothing here measures time.
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { cleanupChannels, killFixtures, startFixture, uniqueName } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

it('a pending receive() keeps its process alive until a message comes', async () => {
  const name = uniqueName('ref');
  const channel = Channel.create<string>(name);
  try {
    const waiter = startFixture('unref-waiter.mjs', [name, 'REF']);
    await waiter.line('waiting');
    channel.sendSync('hello');
    expect(await waiter.exited).toEqual({ code: 0, signal: null });
    expect(waiter.stdout()).toBe('waiting\nreceived hello\nexiting\n');
  } finally {
    channel.close();
  }
});

it('after unref() a pending receive() no longer keeps its process alive', async () => {
  const name = uniqueName('unref');
  const channel = Channel.create<string>(name);
  try {
    const waiter = startFixture('unref-waiter.mjs', [name, 'UNREF']);
    expect(await waiter.exited).toEqual({ code: 0, signal: null });
    expect(waiter.stdout()).toBe('waiting\nexiting\n');
    expect(channel.stats().messagesReceived).toBe(0);
  } finally {
    channel.close();
  }
});

it('process.exit() with a receive() pending ends the process cleanly (the cancelled wait cannot call back)', async () => {
  const name = uniqueName('exit-pending');
  const channel = Channel.create<string>(name);
  try {
    const waiter = startFixture('unref-waiter.mjs', [name, 'EXIT']);
    expect(await waiter.exited).toEqual({ code: 0, signal: null });
    expect({ stdout: waiter.stdout(), stderr: waiter.stderr() }).toEqual({ stdout: 'waiting\nexiting\n', stderr: '' });
  } finally {
    channel.close();
  }
});

it('ref() and unref() answer the handle, also once closed, and await using closes it', async () => {
  const name = uniqueName('dispose');
  const channel = Channel.create(name);
  expect(channel.unref()).toBe(channel);
  expect(channel.ref()).toBe(channel);
  await channel[Symbol.asyncDispose]();
  expect(channel.closed).toBe(true);
  expect(channel.unref()).toBe(channel);
});

it('worker threads wait on their own waiter threads: woken, terminated while waiting, and ended with an unref()ed wait', async () => {
  const name = uniqueName('workers');
  const fixture = startFixture('worker-waits.mjs', [name]);
  expect(await fixture.exited).toEqual({ code: 0, signal: null });
  expect(fixture.stderr()).toBe('');
  expect(JSON.parse(fixture.stdout())).toEqual({
    first: { messages: ['waiting', { to: 'the worker' }, 'waiting again'], exitCode: 1 },
    second: { exitCode: 0 },
  });
});

describe.each([
  { label: 'io_uring', env: {} },
  { label: 'waiter threads', env: { SHMCHAN_NO_IO_URING: '1' } },
])('a wake-up callback that throws ($label)', ({ env }) => {
  it('reaches uncaughtException, and the process goes on waiting and waking', async () => {
    const fixture = startFixture('throwing-wake.mjs', [uniqueName('throwing-wake')], { env });
    const { code, signal } = await fixture.exited;
    expect({ code, signal, stderr: fixture.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    const result = JSON.parse(fixture.stdout().trim().split('\n').pop()!);
    expect(result).toMatchObject({ caught: ['thrown by a wake-up callback'], received: 'after' });
  }, 30_000);
});
