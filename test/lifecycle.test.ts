import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { cleanupChannels, killFixtures, uniqueName } from './helpers';

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

it('keeps the name after close with unlinkOnClose: false, and openers never remove it', () => {
  const name = uniqueName('keep');
  const creator = Channel.create(name, { unlinkOnClose: false });
  const opener = Channel.open(name);
  opener.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(true);
  creator.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(true);
  expect(Channel.unlink(name)).toBe(true);
  expect(Channel.unlink(name)).toBe(false);
});

it('does not remove a channel that was recreated under the same name', () => {
  const name = uniqueName('recreated');
  const first = Channel.create(name);
  Channel.unlink(name);
  const second = Channel.create(name);
  first.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(true);
  second.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(false);
});

it('close() is idempotent, Symbol.dispose closes, and a closed handle reads back as closed', () => {
  const name = uniqueName('dispose');
  const channel = Channel.create(name);
  expect(channel.closed).toBe(false);
  channel[Symbol.dispose]();
  expect(channel.closed).toBe(true);
  channel.close();
  expect(existsSync(`/dev/shm/${name}`)).toBe(false);
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
function shmMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes('/dev/shm/')).length;
}

it('leaks no file descriptors, mappings or names over 500 create/use/close cycles', () => {
  const name = uniqueName('cycle');
  const fdsBefore = openFds();
  const mapsBefore = shmMappings();
  for (let i = 0; i < 500; i++) {
    const producer = Channel.create(name, { capacity: 4096 });
    const consumer = Channel.open(name);
    producer.sendSync({ i });
    expect(consumer.receiveSync()).toEqual({ i });
    consumer.close();
    producer.close();
  }
  expect(openFds()).toBe(fdsBefore);
  expect(shmMappings()).toBe(mapsBefore);
  expect(existsSync(`/dev/shm/${name}`)).toBe(false);
});
