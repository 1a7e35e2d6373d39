// node bench/service-floor.mjs [--round-trips 30000] [--rounds 3]: one request in flight,
// a worker process echoing, over the two kinds of channel a service uses (an 'mpmc' queue,
// an 'mpsc' reply channel) and with the service's envelopes ([client, id, value] and
// [id, 0, value]), but without Service and Client: what the rings, the codec and the
// waits cost on their own. Beside it, the same with spsc channels, with bare values, and
// the Service itself, alternated in one run; p50 and p90 of the round trip in µs.
// Run it alone: it is a timing.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel, Client, Service } from 'shmchan';

const { values } = parseArgs({ options: { 'round-trips': { type: 'string', default: '30000' }, rounds: { type: 'string', default: '3' } } });
const count = Number(values['round-trips']);
const index = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const value = { seq: 1, ts: 2, kind: 'tick', payload: Buffer.alloc(64, 1) };

/** A worker process: echoes each request on the queue to the reply channel its client number names (or to `replyTo`). */
function echoWorker(queue, replyTo, bare) {
  return spawn(process.execPath, ['--input-type=module', '-e', `
const { Channel } = await import(${JSON.stringify(index)});
const queue = Channel.open(${JSON.stringify(queue)});
const replies = new Map();
for (;;) {
  const m = await queue.receive();
  if (m === 'end') break;
  const to = ${bare} ? ${JSON.stringify(replyTo)} : ${JSON.stringify(`${queue}.reply.`)} + m[0];
  let reply = replies.get(to);
  if (reply === undefined) replies.set(to, (reply = Channel.open(to)));
  reply.trySend(${bare} ? m : [m[1], 0, m[2]]);
}
queue.close();
for (const reply of replies.values()) reply.close();`], { stdio: 'inherit' });
}

function percentiles(samples) {
  samples.sort((a, b) => a - b);
  return { p50: samples[samples.length >> 1], p90: samples[Math.floor(samples.length * 0.9)] };
}

async function channels(queueMode, replyMode, bare) {
  const name = `bench-floor-${process.pid}`;
  const queue = Channel.create(name, { mode: queueMode });
  const reply = Channel.create(`${name}.reply.1`, { mode: replyMode });
  reply.tryReceive();
  const worker = echoWorker(name, reply.name, bare);
  const samples = [];
  try {
    for (let i = 1; i <= 5000 + count; i++) {
      const start = performance.now();
      value.seq = i;
      queue.trySend(bare ? value : [1, i, value]);
      let answer = reply.tryReceive();
      if (answer === undefined) answer = await reply.receive({ timeout: 10_000 }); // a worker that failed must not hang the run
      if ((bare ? answer.seq : answer[0]) !== i) throw new Error(`reply ${JSON.stringify(answer)} to request ${i}`);
      if (i > 5000) samples.push((performance.now() - start) * 1000);
    }
    queue.trySend('end');
    await new Promise((resolve) => worker.on('exit', resolve));
  } finally {
    worker.kill();
    queue.close();
    reply.close();
  }
  return percentiles(samples);
}

async function service() {
  const name = `bench-floor-svc-${process.pid}`;
  const created = Service.create(name);
  const worker = spawn(process.execPath, ['--input-type=module', '-e', `
const { Service } = await import(${JSON.stringify(index)});
const service = Service.open(${JSON.stringify(name)});
process.on('SIGTERM', () => service.close());
await service.serve((v) => v);`], { stdio: 'inherit' });
  const client = await Client.connect(name);
  const samples = [];
  try {
    for (let i = 1; i <= 5000 + count; i++) {
      const start = performance.now();
      value.seq = i;
      const answer = await client.request(value, { timeout: 10_000 });
      if (answer.seq !== i) throw new Error(`reply ${answer.seq} to request ${i}`);
      if (i > 5000) samples.push((performance.now() - start) * 1000);
    }
  } finally {
    worker.kill('SIGTERM');
    await new Promise((resolve) => worker.on('exit', resolve));
    client.close();
    created.close();
  }
  return percentiles(samples);
}

const runs = {
  'spsc + spsc, bare values': () => channels('spsc', 'spsc', true),
  'spsc + spsc, envelopes': () => channels('spsc', 'spsc', false),
  'mpsc + mpsc, envelopes': () => channels('mpsc', 'mpsc', false),
  'mpmc + mpsc, envelopes': () => channels('mpmc', 'mpsc', false),
  'Service and Client': service,
};
const results = Object.fromEntries(Object.keys(runs).map((label) => [label, []]));
for (let round = 0; round < Number(values.rounds); round++)
  for (const [label, run] of Object.entries(runs)) results[label].push(await run());
for (const [label, rounds] of Object.entries(results))
  console.log(`${label.padEnd(26)} p50 ${rounds.map((r) => r.p50.toFixed(2)).join(', ')} µs   p90 ${rounds.map((r) => r.p90.toFixed(2)).join(', ')} µs`);
