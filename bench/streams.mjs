// node bench/streams.mjs [--mib 512] [--rounds 3]: bytes from one Node process to
// another in 64 KiB writes, through a child's stdout pipe and through shmchan's
// createWriteStream / createReadStream, alternated in one run. The child writes as
// a user would (write, and wait for 'drain' when write() answers false); the parent
// reads with 'data' events. Time runs from the child's start to the last byte.
// --only pipe|shmchan runs one of the two (to profile it).
// Run it alone: it is a timing.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createReadStream, createWriteStream } from 'shmchan';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    child: { type: 'string' },
    name: { type: 'string' },
    hwm: { type: 'string' },
  },
});
const total = Number(values.mib) * 1024 * 1024;
const chunk = Buffer.alloc(65536, 0x61);
const hwmOption = values.hwm === undefined ? {} : { highWaterMark: Number(values.hwm) };

async function writeAll(out) {
  for (let sent = 0; sent < total; sent += chunk.length)
    if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
}

if (values.child === 'pipe') {
  await writeAll(process.stdout);
} else if (values.child === 'shmchan') {
  await writeAll(createWriteStream(values.name, hwmOption));
} else {
  const self = fileURLToPath(import.meta.url);
  const read = (stream) =>
    new Promise((resolve, reject) => {
      let bytes = 0;
      stream.on('data', (data) => (bytes += data.length));
      stream.on('end', () => resolve(bytes));
      stream.on('error', reject);
    });
  const runs = {
    pipe: async () => {
      const child = spawn(process.execPath, [...process.execArgv, self, '--child', 'pipe', '--mib', values.mib], { stdio: ['ignore', 'pipe', 'inherit'] });
      return read(child.stdout);
    },
    shmchan: async () => {
      const name = `bench-streams-${process.pid}`;
      const input = createReadStream(name, { create: true, capacity: 4 * 1024 * 1024, ...hwmOption });
      spawn(process.execPath, [...process.execArgv, self, '--child', 'shmchan', '--name', name, '--mib', values.mib, ...(values.hwm === undefined ? [] : ['--hwm', values.hwm])], { stdio: 'inherit' });
      return read(input);
    },
  };
  const rates = { pipe: [], shmchan: [] };
  for (let round = 0; round < Number(values.rounds); round++)
    for (const [id, run] of Object.entries(runs)) {
      if (values.only !== undefined && values.only !== id) continue;
      const t0 = process.hrtime.bigint();
      const bytes = await run();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (bytes !== total) throw new Error(`${id}: ${bytes} bytes arrived of ${total}`);
      rates[id].push(bytes / seconds / 1e6);
    }
  const list = (r) => r.map((v) => v.toFixed(0)).join(', ');
  const median = (r) => [...r].sort((a, b) => a - b)[Math.floor(r.length / 2)];
  console.log(`${values.mib} MiB in 64 KiB writes, Node process to Node process, MB/s per round (node bench/streams.mjs)`);
  console.log(`child stdout pipe                    ${list(rates.pipe)}`);
  console.log(`createWriteStream → createReadStream ${list(rates.shmchan)}   (median ${(median(rates.shmchan) / median(rates.pipe)).toFixed(2)}× the pipe)`);
}
