// Channel.connect: the asynchronous open. It waits for a channel to appear, in
// another process, without blocking the event loop, and stops at its timeout or
// its signal.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { backends, cleanupChannels, killFixtures, packageRoot, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** Creates NAME from another process after `ms`, sends one message, and keeps it. */
function createLater(name: string, backend: string, ms: number) {
  const script = `setTimeout(() => { const { Channel } = require('.'); const c = Channel.create(${JSON.stringify(name)}, { backend: '${backend}', unlinkOnClose: false }); c.sendSync('hello'); c.close(); }, ${ms})`;
  const child = spawn(process.execPath, ['-e', script], { cwd: packageRoot, stdio: 'inherit' });
  return new Promise((resolve) => child.on('exit', resolve));
}

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('waits for a channel created later by another process while the event loop keeps running', async () => {
    const name = uniqueName('connect-later');
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    try {
      const created = createLater(name, backend, 300);
      const channel = await Channel.connect<string>(name, { backend });
      try {
        expect(ticks).toBeGreaterThan(0);
        expect(channel.receiveSync({ timeout: 10_000 })).toBe('hello');
      } finally {
        channel.close();
      }
      await created;
    } finally {
      clearInterval(interval);
      b.unlink(name);
    }
  });

  it('stops at its timeout with ERR_TIMEOUT, without advising the option it was given', async () => {
    const name = uniqueName('connect-expiry');
    const error = await Channel.connect(name, { backend, timeout: 50 }).catch((e) => e);
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(error.message).toContain(`channel '${name}' did not appear within 50 ms`);
    expect(error.message).not.toContain('{ timeout }');
    expect(b.exists(name)).toBe(false);
  });

  it('stops when its signal aborts, before or while it waits', async () => {
    const name = uniqueName('connect-abort');
    await expect(Channel.connect(name, { backend, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    const controller = new AbortController();
    const waiting = Channel.connect(name, { backend, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

  it('opens an existing channel at once, and checks its arguments like open', async () => {
    const name = uniqueName('connect-now');
    const creator = b.create<string>(name);
    try {
      const channel = await Channel.connect<string>(name, { backend });
      expect(channel.capacity).toBe(creator.capacity);
      channel.close();
      await expect(Channel.connect(name, { backend, codec: 'raw' })).rejects.toMatchObject({ code: 'ERR_INCOMPATIBLE' });
      await expect(Channel.connect('bad name!', { backend })).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
      await expect(Channel.connect(name, { backend, signal: 'no' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    } finally {
      creator.close();
    }
  });
});

it('open({ timeout }) that expires says the channel did not appear, without advising a timeout', () => {
  const name = uniqueName('open-expiry');
  let error: any;
  try {
    Channel.open(name, { timeout: 30 });
  } catch (e) {
    error = e;
  }
  expect(error).toMatchObject({ code: 'ERR_CHANNEL_NOT_FOUND' });
  expect(error.message).toContain('did not appear within 30 ms');
  expect(error.message).not.toContain('pass { timeout }');
});
