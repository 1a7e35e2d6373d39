// shmchan/nats used as a library, in this process, against a real nats-server:
// the entry points, core mode, backpressure, stop(), order-key repeats, and the
// CLI's usage errors.
import { execFileSync, spawnSync } from 'node:child_process';
import { connect, headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { bridgeFromNats, bridgeToNats } from '../dist/nats.js';
import { packageRoot, uniqueName } from './helpers';
import { natsServerFor, useNatsServer } from './nats-server';

const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: packageRoot, encoding: 'utf8' }).trim();

it("loads as require('shmchan/nats') and import 'shmchan/nats', and the main entry never loads the NATS client", () => {
  expect(run(['-e', "const n = require('shmchan/nats'); console.log(typeof n.bridgeToNats, typeof n.bridgeFromNats)"])).toBe('function function');
  expect(run(['--input-type=module', '-e', "import { bridgeToNats, bridgeFromNats } from 'shmchan/nats'; console.log(typeof bridgeToNats, typeof bridgeFromNats)"])).toBe(
    'function function',
  );
  expect(run(['-e', "require('shmchan'); require('./dist/cli/main.js'); console.log(Object.keys(require.cache).filter((k) => k.includes('@nats-io')).length)"])).toBe('0');
});

it('the bridge command reports bad usage with exit status 2', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['bin/shmchan.js', 'bridge', ...args], { cwd: packageRoot, encoding: 'utf8' });
  expect(cli(['orders']).status).toBe(2);
  expect(cli(['orders', '--to', 'nats://h/a', '--from', 'nats://h/b']).status).toBe(2);
  const noSubject = cli(['orders', '--to', 'nats://127.0.0.1:4222']);
  expect(noSubject.status).toBe(2);
  expect(noSubject.stderr).toMatch(/name a subject/);
  expect(cli(['orders', '--to', 'http://h/a']).status).toBe(2);
  expect(cli(['orders', '--to', 'nats://h/a', '--bogus']).status).toBe(2);
  for (const [args, message] of [
    [['--to', 'nats://h/a', '--mode', 'fanout'], /--mode must be one of spsc, mpsc, mpmc, broadcast/],
    [['--from', 'nats://h/a', '--mode', 'broadcast'], /JetStream --from bridge needs an spsc channel/],
    [['--to', 'nats://h/a', '--overflow', 'overwrite'], /--overflow goes with --mode broadcast/],
    [['--to', 'nats://h/a', '--mode', 'broadcast', '--overflow', 'drop'], /--overflow must be block or overwrite/],
    [['--to', 'nats://h/a', '--max-consumers', '4'], /--max-consumers goes with --mode mpmc or broadcast/],
    [['--to', 'nats://h/a', '--mpsc', '--mode', 'mpmc'], /contradict/],
  ] as const) {
    const result = cli(['orders', ...args]);
    expect({ args, status: result.status }).toEqual({ args, status: 2 });
    expect(result.stderr).toMatch(message);
  }
  const help = cli(['--help']);
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/--to nats:\/\/HOST:PORT\/SUBJECT/);
});

const binary = natsServerFor('the shmchan/nats API tests');

describe.skipIf(binary === undefined)('shmchan/nats against a real nats-server', () => {
  const server = useNatsServer(binary!);
  let subjects = 0;
  const subject = (label: string) => `shmchan.api.${process.pid}.${label}.${subjects++}`;


  it('rejects bad options, an unreachable server, and a JetStream bridge into an mpsc channel', async () => {
    await expect(bridgeToNats(uniqueName('x'), { servers: server.url } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    await expect(bridgeToNats(uniqueName('x'), { servers: server.url, subject: 'a', mode: 'fast' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG',
    });
    const name = uniqueName('mpsc');
    const channel = Channel.create(name, { mode: 'mpsc' });
    await expect(bridgeFromNats({ servers: server.url, subject: subject('mpsc') }, name)).rejects.toMatchObject({ code: 'ERR_INCOMPATIBLE' });
    channel.close();
    await expect(bridgeToNats(uniqueName('x'), { servers: 'nats://127.0.0.1:1', subject: 'a' })).rejects.toThrow(/cannot connect to NATS/);
  });

  it('core mode carries messages in order and forwards the end of the stream', async () => {
    const a = Channel.create<{ i: number }>(uniqueName('core-A'), { capacity: 16384 });
    const b = Channel.create<{ i: number }>(uniqueName('core-B'), { capacity: 16384 });
    const options = { servers: server.url, subject: subject('core'), mode: 'core' as const };
    const from = await bridgeFromNats(options, b.name);
    const to = await bridgeToNats(a.name, options);
    expect([to.mode, to.direction, from.direction]).toEqual(['core', 'to', 'from']);
    const count = 5000;
    const sending = (async () => {
      for (let i = 0; i < count; i++) await a.send({ i });
      a.end();
    })();
    let expected = 0;
    for await (const message of b) expect(message).toEqual({ i: expected++ });
    await sending;
    expect(expected).toBe(count);
    await Promise.all([to.done, from.done]);
    expect(to.stats()).toMatchObject({ messages: count, dropped: 0 });
    expect(from.stats()).toMatchObject({ messages: count, dropped: 0 });
    a.close();
    b.close();
  });

  it('stops pulling when the channel is full (a bounded batch), stops cleanly while blocked, and a new bridge delivers the rest in order', async () => {
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const topic = subject('backpressure');
    await jsm.streams.add({ name: `API_BP_${subjects}`, subjects: [topic] });
    const total = 500;
    for (let i = 0; i < total; i++) await js.publish(topic, pack({ i, pad: 'x'.repeat(90) }));
    await js.publish(topic, new Uint8Array(0), { headers: endMarker() });

    const b = Channel.create<{ i: number }>(uniqueName('bp-B'), { capacity: 4096 });
    const batch = 8;
    const first = await bridgeFromNats({ servers: server.url, subject: topic, batch, durable: 'bp' }, b.name);
    // wait (without consuming) until the ring has no room for another message
    while (4096 - b.stats().used >= 2 * 112) await new Promise((resolve) => setTimeout(resolve, 20));
    const inRing = b.stats().messagesSent;
    const info = await jsm.consumers.info(`API_BP_${subjects}`, 'bp');
    expect(info.delivered.stream_seq).toBeLessThanOrEqual(inRing + batch);
    expect(info.num_pending).toBeGreaterThanOrEqual(total - inRing - batch);
    expect(first.stats().lag).toBeGreaterThan(0);

    await first.stop(); // its send is waiting for room: it gives up that message
    const second = await bridgeFromNats({ servers: server.url, subject: topic, batch, durable: 'bp' }, b.name);
    let expected = 0;
    for await (const message of b) expect(message.i).toBe(expected++);
    expect(expected).toBe(total);
    await second.done;
    b.close();
    await nc.drain();
  });

  it('skips a message whose order key (origin:position) shows it was already delivered', async () => {
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const topic = subject('repeats');
    await jsm.streams.add({ name: `API_REPEATS_${subjects}`, subjects: [topic] });
    // "o:02" is another id for JetStream's duplicate window, but the same key as "o:2"
    for (const [id, value] of [['o:1', 1], ['o:2', 2], ['o:02', 2], ['other:1', 3]] as const)
      await js.publish(topic, pack(value), { msgID: id });
    await js.publish(topic, new Uint8Array(0), { headers: endMarker() });
    const b = Channel.create<number>(uniqueName('repeats-B'));
    const bridge = await bridgeFromNats({ servers: server.url, subject: topic }, b.name);
    const received: number[] = [];
    for await (const value of b) received.push(value);
    expect(received).toEqual([1, 2, 3]);
    await bridge.done;
    expect(bridge.stats()).toMatchObject({ messages: 3, repeats: 1 });
    b.close();
    await nc.drain();
  });

  it('stops with an error on a message larger than the server accepts, and leaves it in the channel', async () => {
    const a = Channel.create<Buffer>(uniqueName('large-A'), { codec: 'raw', capacity: 4 << 20, maxMessageSize: 2_000_000 });
    a.sendSync(Buffer.alloc(1_500_000));
    const bridge = await bridgeToNats(a.name, { servers: server.url, subject: subject('large') });
    await expect(bridge.done).rejects.toThrow(/cannot publish.*(payload|large)/i);
    expect(a.stats()).toMatchObject({ messagesSent: 1, messagesReceived: 0 });
    a.close();
  });

  function endMarker() {
    const h = headers();
    h.set('Shmchan-End', '1');
    return h;
  }
});
