import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

it('creates /dev/shm/<name> with mode 0600 by default, or as asked, and removes it on the creator close', () => {
  const name = uniqueName('mode');
  const channel = Channel.create(name);
  expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(0o600);
  channel.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(false);

  const shared = Channel.create(`/${name}`, { permissions: 0o644 });
  expect(shared.name).toBe(name);
  expect(statSync(`/dev/shm/${name}`).mode & 0o777).toBe(0o644);
  shared.close();
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('keeps the name after close with unlinkOnClose: false, and openers never remove it', () => {
    const name = uniqueName('keep');
    const creator = b.create(name, { unlinkOnClose: false });
    const opener = b.open(name);
    opener.close();
    expect(b.exists(name)).toBe(true);
    creator.close();
    expect(b.exists(name)).toBe(true);
    expect(b.unlink(name)).toBe(true);
    expect(b.unlink(name)).toBe(false);
  });

  it('does not remove a channel that was recreated under the same name', () => {
    const name = uniqueName('recreated');
    const first = b.create(name);
    b.unlink(name);
    const second = b.create(name);
    first.close();
    expect(b.exists(name)).toBe(true);
    const opener = b.open(name);
    second.sendSync('to the new one');
    expect(opener.receiveSync({ timeout: 10_000 })).toBe('to the new one');
    opener.close();
    second.close();
    expect(b.exists(name)).toBe(false);
  });

  it('close() is idempotent, Symbol.dispose closes, and a closed handle reads back as closed', () => {
    const name = uniqueName('dispose');
    const channel = b.create(name);
    expect(channel.closed).toBe(false);
    expect(channel.backend).toBe(backend);
    channel[Symbol.dispose]();
    expect(channel.closed).toBe(true);
    channel.close();
    expect(b.exists(name)).toBe(false);
  });

  it('leaks no file descriptors, mappings, segments or semaphores over 500 create/use/close cycles', () => {
    const name = uniqueName('cycle');
    const fdsBefore = openFds();
    const mapsBefore = shmMappings();
    for (let i = 0; i < 500; i++) {
      const producer = b.create(name, { capacity: 4096 });
      const consumer = b.open(name);
      producer.sendSync({ i });
      expect(consumer.receiveSync()).toEqual({ i });
      consumer.close();
      producer.close();
    }
    expect(openFds()).toBe(fdsBefore);
    expect(shmMappings()).toBe(mapsBefore);
    expect(b.exists(name)).toBe(false);
  });
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
/** Shared mappings of either kind: /dev/shm/<name> (POSIX) or /SYSV<key> (System V). */
function shmMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes('/dev/shm/') || line.includes('/SYSV')).length;
}

describe.each(backends)('%s: a process that ends without close()', (backend) => {
  const b = using(backend);

  it.each(['dry', 'exit', 'throw'])('closes its handles when it ends (%s): the creator removes the name', async (how) => {
    const name = uniqueName(`exit-${how}`);
    const fixture = b.startFixture('exit-without-close.mjs', [name, how]);
    await fixture.line('ready');
    const { code, signal } = await fixture.exited;
    expect({ code, signal }).toEqual({ code: how === 'throw' ? 1 : 0, signal: null });
    if (how === 'throw') expect(fixture.stderr()).toContain('an uncaught exception, on purpose');
    expect(b.exists(name)).toBe(false);
    // created again at once, as a program started again after it ended
    b.create(name).close();
  });
});
