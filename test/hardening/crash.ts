// One round of the crash harness: producers and the consumer of a channel are
// killed with SIGKILL at random points and replaced, then the stream is ended
// and everything that was delivered is checked. Shared by crash.test.ts
// (CI-sized) and test/stress/crash.stress.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { Channel } from '../../dist/index.js';
import { rng } from '../fixtures/rng.mjs';
import { startFixture, uniqueName, type Fixture } from '../helpers';

export interface CrashRound {
  kills: { consumer: number; producer: number };
  delivered: number;
  /** Messages a killed consumer took with it: received, but not logged. */
  takenByKilledConsumers: number;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function crashRound(seed: number, count: number): Promise<CrashRound> {
  const random = rng(seed);
  const mode = seed % 2 === 0 ? 'spsc' : 'mpsc';
  const lanes = mode === 'spsc' ? 1 : 2;
  const where = `seed ${seed} (${mode})`;
  const name = uniqueName(`crash-${seed}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'shmchan-crash-'));
  const channel = Channel.create(name, { capacity: random.pick([4096, 16384]), mode });
  const running = new Set<Fixture>();
  const hang = setTimeout(() => running.forEach((f) => f.child.kill('SIGKILL')), 120_000);
  try {
    let incarnation = 0;
    const producerLogs = new Map<number, { log: string; killed: boolean }>();
    const consumerLogs: string[] = [];
    const start = (file: string, args: string[]) => {
      const fixture = startFixture(file, args);
      running.add(fixture);
      fixture.exited.then(() => running.delete(fixture));
      return fixture;
    };
    const startProducer = () => {
      const p = incarnation++;
      const log = path.join(dir, `producer-${p}`);
      producerLogs.set(p, { log, killed: false });
      return { p, fixture: start('crash-producer.mjs', [name, String(p), String(count), log, String(seed * 100 + p)]) };
    };
    const startConsumer = () => {
      const log = path.join(dir, `consumer-${consumerLogs.length}`);
      consumerLogs.push(log);
      return start('crash-consumer.mjs', [name, log, String(seed * 100 + 50 + consumerLogs.length)]);
    };

    let consumer = startConsumer();
    const producers = Array.from({ length: lanes }, startProducer);
    const kills = { consumer: 0, producer: 0 };
    const rounds = 2 + random.int(3);
    for (let k = 0; k < rounds; k++) {
      const lane = random.int(lanes + 1); // lanes = the consumer
      await sleep(random.int(120));
      if (lane === lanes) {
        await consumer.line('started');
        consumer.child.kill('SIGKILL');
        await consumer.exited;
        kills.consumer++;
        consumer = startConsumer();
      } else {
        const victim = producers[lane];
        await victim.fixture.line('started');
        victim.fixture.child.kill('SIGKILL');
        const { code } = await victim.fixture.exited;
        // a producer that finished before the kill was not killed
        if (code === null) {
          producerLogs.get(victim.p)!.killed = true;
          kills.producer++;
        }
        producers[lane] = startProducer();
      }
    }
    for (const { fixture } of producers) {
      const { code } = await fixture.exited;
      expect(code, `${where}: a producer failed\n${fixture.stderr()}`).toBe(0);
    }
    channel.end();
    const { code } = await consumer.exited;
    expect(code, `${where}: the last consumer failed\n${consumer.stderr()}`).toBe(0);
    expect(consumer.stdout()).toContain('ended');

    // What arrived, in the order the consumers logged it.
    const got = consumerLogs.flatMap(lines);
    expect(got.filter((l) => l.startsWith('bad')), `${where}: damaged messages`).toEqual([]);
    expect(new Set(got).size, `${where}: a message arrived twice`).toBe(got.length);
    const received = new Map<number, number[]>();
    for (const line of got) {
      const [p, i] = line.split(' ').map(Number);
      (received.get(p) ?? received.set(p, []).get(p)!).push(i);
    }
    let missing = 0;
    for (const [p, { log, killed }] of producerLogs) {
      const acked = lines(log).length; // sends 0..acked-1 returned
      const mine = received.get(p) ?? [];
      for (let j = 1; j < mine.length; j++) expect(mine[j], `${where}: producer ${p} out of order`).toBeGreaterThan(mine[j - 1]);
      // a killed producer may have committed one message more than it logged
      const limit = killed ? acked + 1 : acked;
      expect(mine.every((i) => i < limit), `${where}: producer ${p} delivered a message it never sent`).toBe(true);
      const have = new Set(mine);
      for (let i = 0; i < acked; i++) if (!have.has(i)) missing++;
    }
    // A message counts as consumed when receive() returns it: a consumer killed
    // before it logged one takes that one with it. Nothing else may be missing.
    expect(missing, `${where}: committed messages lost`).toBeLessThanOrEqual(kills.consumer);
    expect(channel.stats().used, `${where}: the ring is not empty`).toBe(0);
    return { kills, delivered: got.length, takenByKilledConsumers: missing };
  } finally {
    clearTimeout(hang);
    running.forEach((f) => f.child.kill('SIGKILL'));
    channel.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
