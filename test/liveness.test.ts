// Liveness kept by the kernel, on both backends: roles and "has the channel open" hold
// across pid namespaces and without a free file descriptor, end when the process
// dies, and a channel left behind by a killed program is stale: create replaces
// it, list() and `shmchan rm --stale` agree.
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { list } from '../dist/index.js';
import {
  backends,
  cleanupChannels,
  fixtureEnv,
  fixturesDir,
  killFixtures,
  killPidNamespace,
  packageRoot,
  pidNamespace,
  pidNamespaceRefusal,
  uniqueName,
  using,
  type Backend,
} from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const refusal = pidNamespaceRefusal();
if (refusal !== undefined) console.log(`skipping the pid namespace tests: unshare is refused here (${refusal})`);
const inOtherPidNamespace = it.skipIf(refusal !== undefined);

/** `shmchan rm --stale NAME`: only this test's channel, whatever else is stale on the host. */
const rmStale = (name: string) =>
  execFileSync(process.execPath, [path.join(packageRoot, 'bin', 'shmchan.js'), 'rm', '--stale', name], { encoding: 'utf8' });

describe.each(backends)('%s', (backend: Backend) => {
  const { create, open, exists, startFixture, runFixture } = using(backend);
  const find = (name: string) => list().find((c) => c.name === name && c.backend === backend);

  /** The ERR_CHANNEL_EXISTS of a create over a channel that holds unread messages. */
  const staleRefusal = (name: string): Error => {
    try {
      create(name);
    } catch (error) {
      expect(error).toMatchObject({ code: 'ERR_CHANNEL_EXISTS' });
      return error as Error;
    }
    throw new Error(`create over '${name}' succeeded`);
  };

  inOtherPidNamespace(
    'a consumer in another pid namespace keeps its role from producers, a second consumer, list() and rm --stale; once killed, its successor gets exactly the rest',
    async () => {
      const name = uniqueName('ns-consumer');
      const producer = create<{ seq: number }>(name, { capacity: 4096, unlinkOnClose: false });
      let sent = 0;
      for (; sent < 10; sent++) producer.sendSync({ seq: sent });
      const consumer = startFixture('take-messages.mjs', [name, '5'], { wrap: pidNamespace });
      expect(JSON.parse((await consumer.line('received')).slice('received '.length))).toEqual([0, 1, 2, 3, 4].map((seq) => ({ seq })));

      // a producer waiting for room waits: the consumer is alive, not gone
      while (producer.trySend({ seq: sent })) sent++;
      await expect(producer.send({ seq: sent }, { timeout: 200 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      const second = open(name);
      expect(() => second.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
      second.close();
      expect(find(name)).toMatchObject({ consumerPid: expect.any(Number), stale: false });

      producer.close();
      expect(find(name)).toMatchObject({ stale: false });
      rmStale(name);
      expect(exists(name)).toBe(true);

      await killPidNamespace(consumer);
      expect(find(name)).toMatchObject({ consumerPid: null, stale: true });
      const successor = open<{ seq: number }>(name);
      const rest: number[] = [];
      for (let m = successor.tryReceive(); m !== undefined; m = successor.tryReceive()) rest.push(m.seq);
      successor.close();
      expect(rest).toEqual(Array.from({ length: sent - 5 }, (_, i) => i + 5));
    },
  );

  inOtherPidNamespace('an opener without a role in another pid namespace keeps its channel from being stale', async () => {
    const name = uniqueName('ns-opener');
    await runFixture('stale-channel.mjs', [name]);
    const opener = startFixture('take-messages.mjs', [name, '0'], { wrap: pidNamespace });
    await opener.line('received');
    expect(find(name)).toMatchObject({ producers: 0, consumerPid: null, creatorPid: null, stale: false });
    rmStale(name);
    expect(exists(name)).toBe(true);
    // in use: never replaced, whatever the options
    expect(() => create(name, { replaceStale: true })).toThrow(
      expect.objectContaining({ code: 'ERR_CHANNEL_EXISTS', message: expect.not.stringContaining('stale') }),
    );
    await killPidNamespace(opener);
    expect(find(name)).toMatchObject({ stale: true });
  });

  it('a role claimed with no free file descriptor is held like any other', async () => {
    const name = uniqueName('no-fds');
    const producer = create<string>(name, { capacity: 4096 });
    try {
      producer.sendSync('first');
      const script = `ulimit -n 64 && exec "${process.execPath}" "${path.join(fixturesDir, 'claim-without-fds.mjs')}" "${name}"`;
      const holder = spawn('sh', ['-c', script], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'inherit'], env: fixtureEnv(backend) });
      try {
        const said = await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve));
        expect(said.trim()).toBe('claimed');
        const second = open<string>(name);
        try {
          expect(() => second.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_ROLE_TAKEN' }));
        } finally {
          second.close();
        }
      } finally {
        holder.kill('SIGKILL');
        await new Promise((resolve) => holder.once('exit', resolve));
      }
    } finally {
      producer.close();
    }
  });

  it('a creator stopped by SIGINT leaves a stale channel that the same program, started again, replaces', async () => {
    const name = uniqueName('sigint');
    const first = startFixture('reader.mjs', [name]);
    await first.line('created');
    first.child.kill('SIGINT');
    expect(await first.exited).toMatchObject({ signal: 'SIGINT' });
    expect(find(name)).toMatchObject({ stale: true });
    const again = startFixture('reader.mjs', [name]);
    await again.line('created');
    expect(find(name)).toMatchObject({ creatorPid: again.child.pid, stale: false });
    again.child.kill('SIGINT');
    await again.exited;
  });

  it('create over a stale channel with unread messages says so, and replaces it with replaceStale', async () => {
    const name = uniqueName('stale-unread');
    await runFixture('stale-channel.mjs', [name]);
    const { message } = staleRefusal(name);
    for (const part of ['stale', '1 unread message', 'Channel.open', 'replaceStale: true', `shmchan rm ${name}`]) expect(message).toContain(part);

    // the message is still there to read
    const reader = open<string>(name);
    expect(reader.tryReceive()).toBe('left behind');
    reader.close();

    const replaced = create<string>(name, { replaceStale: true, capacity: 8192 });
    try {
      expect(replaced.capacity).toBe(8192);
      expect(replaced.tryReceive()).toBeUndefined();
    } finally {
      replaced.close();
    }
  });

  it('a look at a stale channel (shmchan ls, stat, top, in another process) leaves it stale: create still says so and replaces it', async () => {
    const name = uniqueName('stale-looked-at');
    await runFixture('stale-channel.mjs', [name]);
    const look = startFixture('inspect-hold.mjs', [name]);
    try {
      expect(JSON.parse((await look.line('looking')).slice('looking '.length))).toEqual({ inUse: false });
      // a second look (this process's list()) does not count the first as having it open
      expect(find(name)).toMatchObject({ stale: true });
      expect(staleRefusal(name).message).toContain('1 unread message');
      const replaced = create<string>(name, { replaceStale: true });
      try {
        expect(replaced.tryReceive()).toBeUndefined();
      } finally {
        replaced.close();
      }
    } finally {
      look.child.stdin!.end();
    }
    await look.line('done');
  });

  it('replaceStale replaces a stale channel whose messages nobody read', async () => {
    const name = uniqueName('stale-force');
    await runFixture('stale-channel.mjs', [name]);
    const replaced = create<string>(name, { replaceStale: true });
    try {
      expect(replaced.tryReceive()).toBeUndefined();
    } finally {
      replaced.close();
    }
    expect(exists(name)).toBe(false);
  });
});
