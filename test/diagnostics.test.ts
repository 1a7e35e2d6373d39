// Diagnostics: node:diagnostics_channel events for every create, open, close and
// failure, and NODE_DEBUG=shmchan lifecycle lines on stderr, on both backends.
import diagnosticsChannel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { backends, cleanupChannels, killFixtures, uniqueName, using, type Backend } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const names = ['create', 'open', 'close', 'error'] as const;

/** Everything published on the four channels while `body` runs. */
async function recorded(body: () => Promise<void> | void): Promise<{ event: string; message: any }[]> {
  const seen: { event: string; message: any }[] = [];
  const listeners = names.map((event) => {
    const listener = (message: unknown) => seen.push({ event, message });
    diagnosticsChannel.subscribe(`shmchan:channel:${event}`, listener);
    return () => diagnosticsChannel.unsubscribe(`shmchan:channel:${event}`, listener);
  });
  try {
    await body();
  } finally {
    for (const unsubscribe of listeners) unsubscribe();
  }
  return seen;
}

describe.each(backends)('%s', (backend: Backend) => {
  const { create, open, startFixture, runFixture } = using(backend);

  it('publishes create, open (open and connect), close and error with { name, backend, mode }', async () => {
    const name = uniqueName('dc');
    const missing = uniqueName('dc-missing');
    const seen = await recorded(async () => {
      const creator = create(name, { mode: 'mpsc', capacity: 4096 });
      const opener = open(name);
      const connected = await Channel.connect(name, { backend });
      opener.tryReceive();
      expect(() => connected.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
      expect(() => open(missing)).toThrow(expect.objectContaining({ code: 'ERR_CHANNEL_NOT_FOUND' }));
      connected.close();
      opener.close();
      creator.close();
      creator.close(); // closing again publishes nothing
    });
    const channel = { name, backend, mode: 'mpsc' };
    expect(seen.map(({ event, message }) => ({ event, ...message, error: message.error?.code }))).toEqual([
      { event: 'create', ...channel, error: undefined },
      { event: 'open', ...channel, error: undefined },
      { event: 'open', ...channel, error: undefined },
      { event: 'error', ...channel, error: 'ERR_ROLE_TAKEN' },
      { event: 'error', name: missing, backend, mode: undefined, error: 'ERR_CHANNEL_NOT_FOUND' },
      { event: 'close', ...channel, error: undefined },
      { event: 'close', ...channel, error: undefined },
      { event: 'close', ...channel, error: undefined },
    ]);
  });

  it('publishes a failed create with the mode asked for', async () => {
    const name = uniqueName('dc-exists');
    const first = create(name);
    try {
      const seen = await recorded(() => {
        expect(() => create(name, { mode: 'mpsc' })).toThrow(expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS' }));
      });
      expect(seen).toEqual([{ event: 'error', message: { name, backend, mode: 'mpsc', error: expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS' }) } }]);
    } finally {
      first.close();
    }
  });

  it('NODE_DEBUG=shmchan logs create, open, connect, roles, a role taken over, peer gone, stale removed and close to stderr', async () => {
    const name = uniqueName('debug');
    const stale = uniqueName('debug-stale');
    const orphaned = uniqueName('debug-orphaned');
    await runFixture('stale-channel.mjs', [stale]);
    const keeper = create(orphaned, { capacity: 4096 });
    try {
      const consumer = startFixture('holder.mjs', [orphaned, 'consumer']);
      await consumer.line('ready');
      consumer.child.kill('SIGKILL');
      await consumer.exited;

      const fixture = startFixture('debug-lifecycle.mjs', [name, stale, orphaned], { env: { NODE_DEBUG: 'shmchan' } });
      const { code } = await fixture.exited;
      expect(fixture.stdout()).toBe('send failed with ERR_PEER_GONE\ndone\n');
      expect(code).toBe(0);
      const pid = fixture.child.pid;
      const lines = fixture.stderr().split('\n').filter((line) => line.startsWith('SHMCHAN '));
      const expected = [
        `create ${name} (${backend}, spsc)`,
        `open ${name} (${backend}, spsc)`,
        `connect ${name} (${backend}, spsc)`,
        `producer role claimed on ${name}`,
        `consumer role claimed on ${name}`,
        `close ${name}`,
        `removed stale channel ${stale} (1 unread messages)`,
        `create ${stale} (${backend}, spsc)`,
        `open ${orphaned} (${backend}, spsc)`,
        `producer role claimed on ${orphaned}`,
        `error ${orphaned}: ERR_PEER_GONE`,
        `consumer role taken over (its holder died) on ${orphaned}`,
      ];
      for (const text of expected) expect(lines.some((line) => line.startsWith(`SHMCHAN ${pid}: ${text}`)), text).toBe(true);
      expect(lines.filter((line) => line.includes(`close ${name}`))).toHaveLength(3);
    } finally {
      keeper.close();
    }
  });
});
