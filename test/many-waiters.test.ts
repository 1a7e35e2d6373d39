// Pending waits do not cost a thread each: 1,000 receive() calls pending in one
// process, then other processes wake some of them (issue 21). POSIX sleeps queue
// in an io_uring; without it (SHMCHAN_NO_IO_URING=1 makes this kernel act so)
// waiter threads sleep on many futexes at once (futex_waitv); System V channels,
// and kernels without futex_waitv either (SHMCHAN_NO_FUTEX_WAITV=1), use a
// bounded pool whose threads take turns.
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../dist/core/binding.js';
import { cleanupChannels, killFixtures, trackKey, sysvKeyOf, uniqueName, using, type Backend } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
  delete process.env.SHMCHAN_NO_FUTEX_WAITV;
  delete process.env.SHMCHAN_NO_IO_URING;
});

/** Far below one per wait: the process's own threads (about a dozen) and a few waiter threads. */
const THREAD_BOUND = 48;

/** How POSIX sleeps go in this process: a kernel without io_uring's FUTEX_WAIT skips the io_uring case. */
const mechanism = native.waitMechanism();

const cases: { label: string; backend: Backend; count: number; env: Record<string, string>; mechanism: string | undefined }[] = [
  { label: 'posix, io_uring', backend: 'posix', count: 1000, env: {}, mechanism: 'io_uring' },
  { label: 'posix, futex_waitv', backend: 'posix', count: 1000, env: { SHMCHAN_NO_IO_URING: '1' }, mechanism: 'futex_waitv' },
  { label: 'posix, neither', backend: 'posix', count: 200, env: { SHMCHAN_NO_IO_URING: '1', SHMCHAN_NO_FUTEX_WAITV: '1' }, mechanism: 'threads' },
  { label: 'sysv', backend: 'sysv', count: 200, env: {}, mechanism: undefined },
];

describe.each(cases)('$label', ({ backend, count, env, mechanism: expectedMechanism }) => {
  const b = using(backend);

  it.skipIf(expectedMechanism === 'io_uring' && mechanism !== 'io_uring')(`${count} pending receive() in one process use a bounded number of threads, and other processes wake some of them`, async () => {
    Object.assign(process.env, env);
    const prefix = uniqueName('many');
    for (let i = 0; i < count; i++) trackKey(sysvKeyOf(`${prefix}-${i}`));
    // every 7th channel gets 1 to 3 messages, from two processes
    const woken: Record<number, number>[] = [{}, {}];
    for (let i = 3, n = 0; i < count; i += 7, n++) woken[n % 2][i] = 1 + (n % 3);
    const expected = { ...woken[0], ...woken[1] };
    const receiver = b.startFixture('many-receivers.mjs', [prefix, String(count), JSON.stringify(expected)]);
    const before = Number((await receiver.line('waiting')).split(' ')[1]);
    const fromOutside = readdirSync(`/proc/${receiver.child.pid}/task`).length;
    expect({ before, fromOutside }).toEqual({ before: expect.any(Number), fromOutside: expect.any(Number) });
    expect(Math.max(before, fromOutside)).toBeLessThan(THREAD_BOUND);

    const senders = woken.map((part) => b.startFixture('wake-some.mjs', [prefix, JSON.stringify(part)]));
    for (const sender of senders) expect({ ...(await sender.exited), stderr: sender.stderr() }).toEqual({ code: 0, signal: null, stderr: "" });
    expect(await receiver.exited).toEqual({ code: 0, signal: null });
    const result = JSON.parse(receiver.stdout().trim().split('\n').pop()!);
    const total = Object.values(expected).reduce((a, c) => a + c, 0);
    expect(result).toMatchObject({ received: total, mismatches: [], unexpected: [] });
    expect(result.threads).toBeLessThan(THREAD_BOUND);
    if (expectedMechanism !== undefined) expect(result.mechanism).toBe(expectedMechanism);
  }, 120_000);
});
