// node bench/many-waiters.mjs [--channels 1,10,1000] [--samples 300] [--backend posix|sysv]:
// what pending waits cost one process. For each count N, this process creates N
// channels and keeps an `await receive()` pending on every one of them; it reports
// its threads (/proc/self/task) while they wait, then a peer process wakes them one
// at a time, at least 2 ms apart (so every receiver has gone to sleep), taking
// turns with a unix socket the main process also listens on. Reported: the one-way
// wake-up latency, from the peer's send to the main process's JavaScript callback
// (both stamp CLOCK_MONOTONIC through process.hrtime), p50 / p99 in µs, for the
// channel and for the socket of the same run. Run it alone: it is a timing.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from 'shmchan';

const { values } = parseArgs({
  options: {
    channels: { type: 'string', default: '1,10,1000' },
    samples: { type: 'string', default: '300' },
    backend: { type: 'string', default: 'posix' },
    peer: { type: 'string' },
  },
});
const now = () => Number(process.hrtime.bigint());
const samples = Number(values.samples);
const backend = values.backend;

if (values.peer !== undefined) await peer(JSON.parse(values.peer));
else await main();

async function peer({ prefix, count, socket }) {
  const channels = Array.from({ length: count }, (_, i) => Channel.open(`${prefix}-${i}`, { backend }));
  const connection = net.connect(socket);
  await once(connection, 'connect');
  const stride = count > 1 ? 7 : 0; // visits channels all over the set, not only neighbours
  for (let i = 0; i < 2 * samples; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    const stamp = Buffer.alloc(8);
    if (i % 2 === 0) channels[(i * stride) % count].trySend(now());
    else {
      stamp.writeDoubleLE(now());
      connection.write(stamp);
    }
    // the next sample only once this one arrived: one wake-up at a time
    await new Promise((resolve) => process.stdin.once('data', resolve));
  }
  connection.end();
  for (const channel of channels) channel.close();
  process.exit(0); // stdin, read above, would keep the process alive
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1000;
}

function summary(list) {
  const sorted = Float64Array.from(list).sort();
  return `p50 ${percentile(sorted, 0.5).toFixed(0)} / p99 ${percentile(sorted, 0.99).toFixed(0)} µs`;
}

async function run(count) {
  const prefix = `shmchan-many-waiters-${process.pid}-${count}`;
  const channels = Array.from({ length: count }, (_, i) => Channel.create(`${prefix}-${i}`, { backend, capacity: 4096 }));
  const socketPath = `/tmp/${prefix}.sock`;
  rmSync(socketPath, { force: true });
  const server = net.createServer();
  server.listen(socketPath);
  await once(server, 'listening');
  const shm = [];
  const unix = [];
  let child;
  const arrived = (list, sentAt) => {
    list.push(now() - sentAt);
    child.stdin.write('n');
  };
  const pending = channels.map((channel) => {
    const loop = async () => {
      for (;;) {
        let value;
        try {
          value = await channel.receive();
        } catch {
          return; // closed
        }
        arrived(shm, value);
      }
    };
    return loop();
  });
  server.on('connection', (connection) => connection.on('data', (data) => arrived(unix, data.readDoubleLE(0))));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const threads = readdirSync('/proc/self/task').length;
  child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--backend', backend, '--samples', String(samples), '--peer', JSON.stringify({ prefix, count, socket: socketPath })], {
    stdio: ['pipe', 'inherit', 'inherit'],
  });
  await once(child, 'exit');
  for (const channel of channels) channel.close();
  await Promise.all(pending);
  server.close();
  rmSync(socketPath, { force: true });
  return { count, threads, shm: summary(shm), unix: summary(unix) };
}

async function main() {
  const counts = values.channels.split(',').map(Number);
  for (const count of counts) {
    const r = await run(count);
    console.log(`${backend} ${String(r.count).padStart(5)} channels waiting: ${String(r.threads).padStart(5)} threads; wake-up shmchan ${r.shm}; unix socket ${r.unix}`);
  }
}
