#!/usr/bin/env node
// The bridge path against plain NATS between the same two processes.
//
//   node bench/nats-bridge.mjs [--count N] [--paced N] [--server nats://HOST:PORT]
//
// Process P ("host A's producer") and process C ("host B's consumer") exchange
// small msgpack messages { seq, t, body } four ways, each in fresh processes:
//   bridge jetstream   P -> channel A -> shmchan bridge --to -> JetStream -> shmchan bridge --from -> channel B -> C
//   bridge core        the same with --core
//   direct jetstream   P publishes with js.publish (256 awaiting acks), C reads a pull consumer (consume(), ack each)
//   direct core        P nc.publish, C nc.subscribe
// Throughput: --count messages (default 50,000) as fast as P can send them, from
// P's first send to C's last receive. Latency: --paced messages (default 2,000)
// one per millisecond; one way, P's send to C's receive, on the shared monotonic
// clock (process.hrtime). Without --server a nats-server (JetStream, temporary
// store) is started on a free loopback port.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(import.meta.url);
const root = path.join(path.dirname(here), '..');
const now = () => Number(process.hrtime.bigint()) / 1000; // µs, the same clock in every process
const body = 'x'.repeat(40);

// ---- P ----

async function producer(kind, target, count, paced) {
  const n = Number(count);
  const pace = paced === 'paced' ? () => new Promise((resolve) => setTimeout(resolve, 1)) : undefined;
  if (kind.startsWith('bridge')) {
    const { Channel } = await import('shmchan');
    const channel = Channel.open(target, { timeout: 10_000 });
    for (let seq = 0; seq < n; seq++) {
      const message = { seq, t: now(), body };
      if (!channel.trySend(message)) await channel.send(message);
      if (pace) await pace();
    }
    channel.end();
    channel.close();
    return;
  }
  const { connect } = await import('@nats-io/transport-node');
  const { pack } = await import('msgpackr');
  const nc = await connect({ servers: process.env.BENCH_SERVER });
  if (kind === 'direct-core') {
    for (let seq = 0; seq < n; seq++) {
      nc.publish(target, pack({ seq, t: now(), body }));
      if (pace) await pace();
      else if (seq % 1024 === 1023) await nc.flush();
    }
  } else {
    const { jetstream } = await import('@nats-io/jetstream');
    const js = jetstream(nc);
    const window = [];
    for (let seq = 0; seq < n; seq++) {
      window.push(js.publish(target, pack({ seq, t: now(), body })));
      if (window.length >= 256) await window.shift();
      if (pace) await Promise.all(window.splice(0)).then(pace);
    }
    await Promise.all(window);
  }
  await nc.drain();
}

// ---- C ----

async function consumer(kind, source, count) {
  const n = Number(count);
  const latencies = [];
  let first;
  let last;
  const record = (message) => {
    last = now();
    latencies.push(last - message.t);
    first ??= message.t;
  };
  if (kind.startsWith('bridge')) {
    const { Channel } = await import('shmchan');
    const channel = Channel.open(source, { timeout: 10_000 });
    console.log('ready');
    for await (const message of channel) record(message);
    channel.close();
  } else {
    const { connect } = await import('@nats-io/transport-node');
    const { unpack } = await import('msgpackr');
    const nc = await connect({ servers: process.env.BENCH_SERVER });
    if (kind === 'direct-core') {
      const subscription = nc.subscribe(source);
      await nc.flush();
      console.log('ready');
      for await (const m of subscription) {
        record(unpack(m.data));
        if (latencies.length === n) break;
      }
    } else {
      const { jetstream } = await import('@nats-io/jetstream');
      const [stream, durable] = source.split('/');
      const messages = await (await jetstream(nc).consumers.get(stream, durable)).consume();
      console.log('ready');
      for await (const m of messages) {
        record(unpack(m.data));
        m.ack();
        if (latencies.length === n) break;
      }
    }
    await nc.drain();
  }
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  console.log(
    JSON.stringify({ received: latencies.length, seconds: (last - first) / 1e6, p50: at(0.5), p90: at(0.9), p99: at(0.99) }),
  );
}

// ---- the runs ----

function start(args, env = {}) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (err += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => out,
    line: async (text) => {
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited: ${out}${err}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async result() {
      const code = await exited;
      if (code !== 0) throw new Error(`${args.join(' ')} failed (${code}): ${out}${err}`);
      return JSON.parse(out.trim().split('\n').pop());
    },
  };
}

async function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const binary = ['nats-server', '/usr/sbin/nats-server'].find((b) => {
    try {
      execFileSync(b, ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (binary === undefined) throw new Error('nats-server is not installed (apt-get install nats-server), or pass --server');
  const port = await freePort();
  const store = mkdtempSync(path.join(tmpdir(), 'shmchan-bench-nats-'));
  const child = spawn(binary, ['-js', '-sd', store, '-p', String(port), '-a', '127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => (log += chunk));
  while (!log.includes('Server is ready')) {
    if (child.exitCode !== null) throw new Error(`nats-server failed: ${log}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: () => {
      child.kill('SIGTERM');
      return new Promise((resolve) => child.on('exit', resolve)).then(() => rmSync(store, { recursive: true, force: true }));
    },
  };
}

let runs = 0;

async function runOnce(kind, server, count, paced) {
  const id = `${process.pid}-${runs++}`;
  const env = { BENCH_SERVER: server };
  const subject = `bench.${id}`;
  const bridges = [];
  let target = subject;
  let source = subject;
  if (kind.startsWith('bridge')) {
    const core = kind === 'bridge-core' ? ['--core'] : [];
    target = `bench-A-${id}`;
    source = `bench-B-${id}`;
    bridges.push(start(['bin/shmchan.js', 'bridge', source, '--from', `${server}/${subject}`, '--interval', '0', ...core]));
    await bridges[0].line('bridging');
    bridges.push(start(['bin/shmchan.js', 'bridge', target, '--to', `${server}/${subject}`, '--interval', '0', ...core]));
    await bridges[1].line('bridging');
  } else if (kind === 'direct-jetstream') {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager, AckPolicy } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: server });
    const jsm = await jetstreamManager(nc);
    const stream = `BENCH_${id.replace('-', '_')}`;
    await jsm.streams.add({ name: stream, subjects: [subject] });
    await jsm.consumers.add(stream, { durable_name: 'bench', ack_policy: AckPolicy.Explicit });
    await nc.drain();
    source = `${stream}/bench`;
  }
  const c = start([here, 'consumer', kind, source, String(count)], env);
  await c.line('ready');
  const p = start([here, 'producer', kind, target, String(count), paced ? 'paced' : 'fast'], env);
  const result = await c.result();
  await p.exited;
  for (const bridge of bridges) await bridge.exited;
  if (kind.startsWith('bridge')) {
    const { Channel } = await import('shmchan');
    Channel.unlink(target);
    Channel.unlink(source);
  }
  return result;
}

async function orchestrate() {
  const { values } = parseArgs({
    options: { count: { type: 'string', default: '50000' }, paced: { type: 'string', default: '2000' }, server: { type: 'string' } },
  });
  const server = values.server === undefined ? await startServer() : { url: values.server, stop: async () => {} };
  const kinds = ['bridge-jetstream', 'direct-jetstream', 'bridge-core', 'direct-core'];
  const rows = [];
  try {
    for (const kind of kinds) {
      const throughput = await runOnce(kind, server.url, Number(values.count), false);
      const latency = await runOnce(kind, server.url, Number(values.paced), true);
      rows.push({ kind, throughput, latency });
      const rate = Math.round(throughput.received / throughput.seconds);
      console.error(`${kind}: ${rate} msgs/s; paced one-way latency p50 ${latency.p50.toFixed(0)} µs, p99 ${latency.p99.toFixed(0)} µs`);
    }
  } finally {
    await server.stop();
  }
  console.log(`\n| path | messages/s | one-way latency p50 | p90 | p99 |\n|---|---|---|---|---|`);
  for (const { kind, throughput, latency } of rows) {
    const rate = Math.round(throughput.received / throughput.seconds).toLocaleString('en-US');
    const us = (v) => `${Math.round(v).toLocaleString('en-US')} µs`;
    console.log(`| ${kind.replace('-', ' ')} | ${rate} | ${us(latency.p50)} | ${us(latency.p90)} | ${us(latency.p99)} |`);
  }
}

const [role] = process.argv.slice(2);
if (role === 'producer') await producer(...process.argv.slice(3));
else if (role === 'consumer') await consumer(...process.argv.slice(3));
else await orchestrate();
