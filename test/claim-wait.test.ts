// A consumer waiting behind a claim whose producer is alive but stopped (SIGSTOP,
// a debugger) sleeps instead of polling, and still takes the message as soon as
// the producer is continued and commits it (issue 21). The CPU bound is a spin
// detector, not a speed test: before, such a consumer polled every 2 ms and used
// 9-17% of a core.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** CPU time (user + system, all threads) of a process so far, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
}

function state(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0];
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const WINDOW_MS = 2000;

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('a consumer behind a stopped producer\'s claim uses under 5% of a core over 2 s, and gets the message once it is committed', async () => {
    const name = uniqueName('stopped-claim');
    const channel = b.create(name, { mode: 'mpsc', capacity: 4096 });
    try {
      const producer = b.startFixture('stop-mid-send.mjs', [name]);
      await producer.line('claimed');
      while (state(producer.child.pid!) !== 'T') await new Promise((resolve) => setTimeout(resolve, 5));
      const consumer = b.startFixture('receive-outcome.mjs', [name, 'async']);
      await consumer.line('waiting');
      await new Promise((resolve) => setTimeout(resolve, 300)); // past the first short sleeps
      const before = cpuTicks(consumer.child.pid!);
      await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
      const used = (cpuTicks(consumer.child.pid!) - before) / TICKS_PER_SECOND / (WINDOW_MS / 1000);
      expect(state(producer.child.pid!)).toBe('T'); // still stopped: the consumer really waited behind it
      expect(used).toBeLessThan(0.05);

      producer.child.kill('SIGCONT');
      expect(await producer.exited).toEqual({ code: 0, signal: null });
      expect(await consumer.exited).toEqual({ code: 0, signal: null });
      const outcome = JSON.parse(consumer.stdout().trim().split('\n').pop()!);
      expect(outcome).toEqual({ result: 'value', value: { after: 'the stop', bytes: expect.anything() } });
      expect(Buffer.from(outcome.value.bytes.data ?? outcome.value.bytes)).toEqual(Buffer.alloc(100, 7));
    } finally {
      channel.close();
    }
  }, 60_000);
});
