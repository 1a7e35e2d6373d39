// The NATS bridge on 'broadcast' and 'mpmc' channels: on the sending side it is
// one subscriber or one competing consumer, on the receiving side one producer
// among others. Every process is real (bridges, producers, subscribers, workers),
// and so is the nats-server. The bridge opens its channel by name on the POSIX
// backend only (it has no backend option), like the other bridge tests.
import { describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { bridgeToNats, type BridgeEvent } from '../dist/nats.js';
import { runFixture, startFixture, uniqueName, type Fixture } from './helpers';
import { NatsServer, natsServerFor, useNatsServer } from './nats-server';

const binary = natsServerFor('the NATS bridge tests on broadcast and mpmc channels');

describe.skipIf(binary === undefined)('the NATS bridge on broadcast and mpmc channels', () => {
  const server = useNatsServer(binary!);
  let subjects = 0;
  const subject = (label: string) => `shmchan.fanout.${process.pid}.${label}.${subjects++}`;


  function bridge(direction: 'to' | 'from', channel: string, topic: string, extra: string[] = [], url = server.url): Fixture {
    return startFixture('../../bin/shmchan.js', ['bridge', channel, `--${direction}`, `${url}/${topic}`, '--interval', '0', ...extra]);
  }

  async function finished(fixture: Fixture): Promise<string> {
    const { code, signal } = await fixture.exited;
    if (code !== 0) throw new Error(`exited with ${code ?? signal}\nstdout: ${fixture.stdout()}\nstderr: ${fixture.stderr()}`);
    const lines = fixture.stdout().trim().split('\n');
    return lines[lines.length - 1];
  }

  it('broadcast -> NATS -> broadcast: both subscribers on the far side get every message, every byte, in host A order', async () => {
    const a = Channel.create(uniqueName('bc-A'), { mode: 'broadcast', capacity: 16384 });
    const b = Channel.create(uniqueName('bc-B'), { mode: 'broadcast', capacity: 16384 });
    try {
      const topic = subject('broadcast');
      // the receiving bridge is one producer of B (core NATS: a JetStream bridge into a channel needs spsc)
      const from = bridge('from', b.name, topic, ['--core']);
      await from.line('bridging');
      const far = [0, 1].map(() => startFixture('subscriber.mjs', [b.name, 'latest']));
      const near = startFixture('subscriber.mjs', [a.name, 'latest']); // the bridge is one subscriber of A among others
      await Promise.all([...far, near].map((s) => s.line('subscribed')));
      const to = bridge('to', a.name, topic);
      await to.line('bridging');
      const perProducer = 4000; // all of them fit the receiving bridge's core-mode queue: none is dropped
      const sent = await Promise.all([1, 2].map((p) => runFixture('mpsc-producer.mjs', [a.name, String(p), String(perProducer)])));
      expect(sent).toEqual([{ sent: perProducer }, { sent: perProducer }]);
      a.end(); // crosses too: ends B after everything sent before it
      expect(await finished(to)).toMatch(/stopped: 8000 messages/);
      expect(await finished(from)).toMatch(/stopped: 8000 messages/);
      const summaries = await Promise.all([near, ...far].map(async (s) => JSON.parse(await finished(s))));
      for (const summary of summaries)
        expect(summary).toMatchObject({ received: 2 * perProducer, lost: 0, messagesLost: 0, first: { 1: 0, 2: 0 }, next: { 1: perProducer, 2: perProducer }, problems: [] });
      // the same sequence everywhere: host A's order crossed unchanged
      expect(new Set(summaries.map((s) => s.hash)).size).toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });

  it('the bridge command creates a fan-out channel: --mode broadcast --overflow overwrite --max-consumers 4', async () => {
    const name = uniqueName('bc-made');
    const to = bridge('to', name, subject('made'), ['--mode', 'broadcast', '--overflow', 'overwrite', '--max-consumers', '4']);
    await to.line('bridging');
    const channel = Channel.open(name);
    try {
      expect({ mode: channel.mode, overflow: channel.overflow }).toEqual({ mode: 'broadcast', overflow: 'overwrite' });
      expect(channel.stats()).toMatchObject({ consumers: 1 }); // the bridge, one subscriber
      const others = [1, 2, 3].map(() => Channel.open(name));
      for (const other of others) expect(other.tryReceive()).toBeUndefined();
      const fifth = Channel.open(name);
      expect(() => fifth.tryReceive()).toThrow(expect.objectContaining({ code: 'ERR_TOO_MANY_CONSUMERS' }));
      for (const c of [...others, fifth]) c.close();
      channel.end();
      expect(await finished(to)).toMatch(/stopped: 0 messages/);
    } finally {
      channel.close();
      Channel.unlink(name);
    }
  });

  it('mpmc: with two workers beside the bridge on host A, every message is taken exactly once, by a worker or through NATS', async () => {
    const a = Channel.create(uniqueName('mq-A'), { mode: 'mpmc', capacity: 16384 });
    const b = Channel.create(uniqueName('mq-B'), { capacity: 16384 }); // JetStream on both legs: exactly once end to end
    try {
      const topic = subject('mpmc');
      const from = bridge('from', b.name, topic);
      await from.line('bridging');
      const far = startFixture('worker.mjs', [b.name]);
      await far.line('started');
      const to = bridge('to', a.name, topic);
      await to.line('bridging');
      // first the bridge is A's only consumer: most of producer 1's messages (far more
      // than the ring holds) go through it; then two workers compete with it
      expect(await runFixture('mpsc-producer.mjs', [a.name, '1', '3000'])).toEqual({ sent: 3000 });
      const near = [0, 1].map(() => startFixture('worker.mjs', [a.name]));
      await Promise.all(near.map((w) => w.line('started')));
      expect(await runFixture('mpsc-producer.mjs', [a.name, '2', '5000'])).toEqual({ sent: 5000 });
      a.end(); // each worker of A ends once everything is taken; the bridge forwards the end to B
      const bridged = Number(/stopped: (\d+) messages/.exec(await finished(to))![1]);
      expect(await finished(from)).toMatch(new RegExp(`stopped: ${bridged} messages`));
      const takenBy = (w: Fixture) => w.stdout().trim().split('\n').slice(1, -1); // between "started" and the summary
      const taken: string[] = [];
      for (const w of [...near, far]) {
        expect(JSON.parse(await finished(w)).problems).toEqual([]);
        taken.push(...takenBy(w));
      }
      expect(takenBy(far).length).toBe(bridged);
      expect(bridged).toBeGreaterThan(3000 - 16384 / 8); // no more than that many records fit the ring
      const expected = [...Array.from({ length: 3000 }, (_, i) => `1:${i}`), ...Array.from({ length: 5000 }, (_, i) => `2:${i}`)];
      expect(taken.sort()).toEqual(expected.sort());
      // through NATS, each producer's messages keep their order
      for (const p of ['1', '2']) {
        const seq = takenBy(far).filter((t) => t.startsWith(`${p}:`)).map((t) => Number(t.split(':')[1]));
        expect(seq.findIndex((i, n) => n > 0 && i <= seq[n - 1])).toBe(-1);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it("broadcast 'block': a sending bridge killed (SIGKILL) while producers wait for it holds them back no longer", async () => {
    const own = await NatsServer.start(binary!);
    const a = Channel.create(uniqueName('bc-dead'), { mode: 'broadcast', capacity: 4096 });
    try {
      const to = bridge('to', a.name, subject('dead'), [], own.url);
      await to.line('bridging');
      await own.stop(); // the bridge keeps what it read and waits for the server: its cursor stays
      const producer = startFixture('mpsc-producer.mjs', [a.name, '1', '2000']);
      await producer.line('started');
      // the producer fills the ring and waits for the bridge, the only subscriber
      while (a.stats().messagesSent < 10) await new Promise((resolve) => setTimeout(resolve, 10));
      to.child.kill('SIGKILL');
      expect((await to.exited).signal).toBe('SIGKILL');
      expect(await finished(producer)).toBe('{"sent":2000}');
      expect(a.stats().messagesSent).toBe(2000);
    } finally {
      a.close();
      await own.dispose();
    }
  });

  it("broadcast 'overwrite': messages overwritten before the bridge read them are counted as lost and told, the rest arrive", async () => {
    const own = await NatsServer.start(binary!);
    const a = Channel.create(uniqueName('bc-over'), { mode: 'broadcast', overflow: 'overwrite', capacity: 4096 });
    const events: BridgeEvent[] = [];
    const topic = subject('overwrite');
    const to = await bridgeToNats(a.name, { servers: own.url, subject: topic, onEvent: (event) => events.push(event) });
    try {
      await own.stop(); // the bridge cannot publish: the producer laps it
      const count = 3000;
      expect(await runFixture('mpsc-producer.mjs', [a.name, '1', String(count)])).toEqual({ sent: count });
      a.end();
      await own.restart();
      await to.done;
      const { messages, lost } = to.stats();
      expect(lost).toBeGreaterThan(0);
      expect(messages + lost).toBe(count);
      expect(events.some((e) => e.type === 'warning' && /overwrote \d+ messages before the bridge read them/.test(e.message))).toBe(true);
      // what JetStream holds is what the bridge counted, and the end marker
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: own.url });
      try {
        const jsm = await jetstreamManager(nc);
        expect((await jsm.streams.info(await jsm.streams.find(topic))).state.messages).toBe(messages + 1);
      } finally {
        await nc.close();
      }
    } finally {
      await to.stop().catch(() => {});
      a.close();
      await own.dispose();
    }
  });
  it("shmchan bridge prints what an 'overwrite' channel lost in its counters line", async () => {
    const own = await NatsServer.start(binary!);
    const a = Channel.create(uniqueName('bc-over-cli'), { mode: 'broadcast', overflow: 'overwrite', capacity: 4096 });
    try {
      const to = bridge('to', a.name, subject('overwrite-cli'), [], own.url);
      await to.line('bridging');
      await own.stop(); // the bridge cannot publish: the producer laps it
      const count = 3000;
      expect(await runFixture('mpsc-producer.mjs', [a.name, '1', String(count)])).toEqual({ sent: count });
      a.end();
      await own.restart();
      const [, messages, lost] = /stopped: (\d+) messages.*, (\d+) lost/.exec(await finished(to)) ?? [];
      expect(Number(lost)).toBeGreaterThan(0);
      expect(Number(messages) + Number(lost)).toBe(count);
    } finally {
      a.close();
      await own.dispose();
    }
  });
});
