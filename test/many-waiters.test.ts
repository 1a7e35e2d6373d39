// Pending waits do not cost a thread each: 1,000 receive() calls pending in one
// process, then other processes wake some of them (issue 21). The waiter threads
// sleep on many futexes at once (futex_waitv); System V channels, and kernels
// without futex_waitv (SHMCHAN_NO_FUTEX_WAITV=1 makes this one act so), use a
// bounded pool whose threads take turns.
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupChannels, killFixtures, trackKey, sysvKeyOf, uniqueName, using, type Backend } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
  delete process.env.SHMCHAN_NO_FUTEX_WAITV;
});

/** Far below one per wait: the process's own threads (about a dozen) and a few waiter threads. */
const THREAD_BOUND = 48;

const cases: { label: string; backend: Backend; count: number; fallback: boolean }[] = [
  { label: 'posix, futex_waitv', backend: 'posix', count: 1000, fallback: false },
  { label: 'posix, without futex_waitv', backend: 'posix', count: 200, fallback: true },
  { label: 'sysv', backend: 'sysv', count: 200, fallback: false },
];

describe.each(cases)('$label', ({ backend, count, fallback }) => {
  const b = using(backend);

  it(`${count} pending receive() in one process use a bounded number of threads, and other processes wake some of them`, async () => {
    if (fallback) process.env.SHMCHAN_NO_FUTEX_WAITV = '1';
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
  }, 120_000);
});
