// Leaks: 1,000 create/use/close cycles per backend must leave everything as it
// was: names in /dev/shm, System V segments and semaphore sets
// (/proc/sysvipc/shm and sem), open file descriptors, mappings and threads.
// Each cycle creates a channel, opens a second handle, sends and receives in
// every way (sync, async with its waiter thread, try), and closes both; every
// 100th cycle another process opens it and sends too.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it, afterEach } from 'vitest';
import { Channel, ShmChanError } from '../../dist/index.js';
import { cleanupChannels, killFixtures, runFixture, uniqueName } from '../helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const CYCLES = 1000;
type Backend = 'posix' | 'sysv';

/** Why a backend cannot be tested here, or undefined if it can. */
function unavailable(backend: Backend): string | undefined {
  const name = uniqueName(`probe-${backend}`);
  try {
    Channel.create(name, { backend, capacity: 4096 }).close();
    return undefined;
  } catch (error) {
    if (error instanceof ShmChanError && error.code === 'ERR_INVALID_ARG' && /not available/.test(error.message))
      return `backend '${backend}' is not available in this build yet: ${error.message}`;
    throw error;
  }
}

interface Snapshot {
  fds: number;
  mappings: string[];
  threads: number;
  names: string[];
  sysvSegments: string[];
  sysvSemaphores: string[];
}

/** The System V objects this process created (shm by creator pid, sem by key). */
function sysv(file: string, match: (fields: string[]) => boolean): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length > 4 && match(fields))
    .map((fields) => fields.join(' '));
}

function snapshot(prefix: string, keys: Set<number>): Snapshot {
  const status = readFileSync('/proc/self/status', 'utf8');
  return {
    fds: readdirSync('/proc/self/fd').length,
    mappings: readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((line) => line.includes('/dev/shm/') || line.includes('SYSV')),
    threads: Number(/Threads:\s+(\d+)/.exec(status)![1]),
    names: readdirSync('/dev/shm').filter((file) => file.startsWith(prefix)),
    sysvSegments: sysv('/proc/sysvipc/shm', (f) => Number(f[4]) === process.pid || keys.has(Number(f[0]))),
    sysvSemaphores: sysv('/proc/sysvipc/sem', (f) => keys.has(Number(f[0]))),
  };
}

describe.each(['posix', 'sysv'] as const)('%s backend', (backend) => {
  it(`leaves nothing behind after ${CYCLES} create/use/close cycles`, async (ctx) => {
    const reason = unavailable(backend);
    if (reason !== undefined) {
      console.warn(`SKIPPED: ${reason}`);
      ctx.skip(reason);
    }
    const name = uniqueName(`leak-${backend}`);
    const keys = new Set<number>();
    // warm up once: the first use loads code and starts threads that stay
    const warm = Channel.create(name, { backend, capacity: 4096 });
    // (long enough to sleep on a waiter thread even when polling is slow, as under the sanitizers)
    await warm.receive({ timeout: 50 }).catch(() => undefined);
    warm.close();
    const before = snapshot(name, keys);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const creator = Channel.create<unknown>(name, { backend, capacity: 4096, mode: cycle % 2 === 0 ? 'spsc' : 'mpsc' });
      const key = (creator as { key?: number }).key;
      if (key !== undefined) keys.add(key | 0);
      const other = Channel.open<unknown>(name, { backend });
      creator.sendSync({ cycle });
      expect(other.receiveSync({ timeout: 1000 })).toEqual({ cycle });
      const pending = other.receive({ timeout: 10_000 }); // parks on the waiter thread
      creator.trySend(cycle);
      expect(await pending).toBe(cycle);
      if (cycle % 100 === 1) {
        // an mpsc cycle: the creator holds a producer slot, the child takes another
        await runFixture('leak-peer.mjs', [name, backend]);
        expect(other.receiveSync({ timeout: 10_000 })).toMatchObject({ from: expect.any(Number) });
      }
      await expect(other.receive({ timeout: 0 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
      other.close();
      creator.close();
    }
    const after = snapshot(name, keys);
    expect(after).toEqual(before);
    expect(after.names).toEqual([]);
  });
});
