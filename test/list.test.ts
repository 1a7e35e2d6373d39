import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { Channel, list } from '../dist/index.js';
import { cleanupChannels, killFixtures, runFixture, startFixture, uniqueName } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const find = (name: string) => list().find((c) => c.name === name);

it('lists a channel with its header, roles and liveness', async () => {
  const name = uniqueName('list-live');
  const channel = Channel.create(name, { capacity: 8192, permissions: 0o640, codec: 'raw' });
  try {
    expect(find(name)).toEqual({
      name,
      backend: 'posix',
      mode: 'spsc',
      capacity: 8192,
      used: 0,
      producers: 0,
      consumers: 0,
      consumerPid: null,
      creatorPid: process.pid,
      permissions: 0o640,
      stale: false,
    });
    const consumer = startFixture('stream-read.mjs', [name, '--stall']);
    channel.sendSync(Buffer.from('x'));
    await consumer.line('stalled');
    expect(find(name)).toMatchObject({ producers: 1, consumers: 1, consumerPid: consumer.child.pid, stale: false });
  } finally {
    channel.close();
  }
});

it('marks a channel that no live process is attached to as stale', async () => {
  const name = uniqueName('list-stale');
  await runFixture('stale-channel.mjs', [name]);
  expect(find(name)).toMatchObject({ stale: true, creatorPid: null, consumerPid: null, producers: 0 });
});

it('changes nothing in the segments it reads and claims no role', async () => {
  const name = uniqueName('list-readonly');
  const channel = Channel.create(name, { capacity: 4096 });
  try {
    channel.sendSync('kept');
    const before = readFileSync(`/dev/shm/${name}`);
    for (let i = 0; i < 20; i++) list();
    expect(readFileSync(`/dev/shm/${name}`).equals(before)).toBe(true);
    expect(channel.tryReceive()).toBe('kept'); // the consumer role was free
  } finally {
    channel.close();
  }
});

it('leaves out files that are not shmchan segments, and never throws because of one', () => {
  const magic = Buffer.from('SHMC');
  const files: Record<string, Buffer> = {
    foreign: Buffer.alloc(16384, 0xab),
    tiny: Buffer.from('not a channel'),
    empty: Buffer.alloc(0),
    uninitialised: Buffer.alloc(8192 + 4096),
    // the right magic, then an impossible header
    corrupt: Buffer.concat([magic, Buffer.alloc(8192 + 4096 - 4, 0xff)]),
  };
  const names = Object.keys(files).map((label) => {
    const name = uniqueName(`list-${label}`);
    writeFileSync(`/dev/shm/${name}`, files[label]);
    return name;
  });
  const good = uniqueName('list-good');
  const channel = Channel.create(good);
  try {
    const listed = list().map((c) => c.name);
    expect(listed).toContain(good);
    for (const name of names) expect(listed).not.toContain(name);
  } finally {
    channel.close();
  }
});
