// node bench/raw-floor.mjs [--seconds 2] [--rounds 3] [--warm 100000] [--c /tmp/raw-floor]:
// raw 64 B one way between two Node processes over an 'spsc' channel, the benchmark's
// calls (trySend, tryReceiveInto), in millions of messages a second as the consumer
// saw them after its first `warm`. With --c, each round also runs bench/raw-floor.c
// (the same pair in C, built as its header says) right after: the machine's
// ceiling for the row at that moment. Run it alone: it is a timing.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from 'shmchan';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' }, warm: { type: 'string', default: '100000' }, c: { type: 'string' } },
});
const seconds = Number(values.seconds);
const warm = Number(values.warm);
const index = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** One Node pair: this process produces, a child consumes and prints its rate. */
async function nodePair() {
  const name = `bench-raw-floor-node-${process.pid}`;
  const channel = Channel.create(name, { codec: 'raw' });
  try {
    let printed = '';
    const consumer = spawn(process.execPath, ['--input-type=module', '-e', `
const { Channel } = await import(${JSON.stringify(index)});
const channel = Channel.open(${JSON.stringify(name)}, { codec: 'raw', timeout: 5000 });
const into = new Uint8Array(channel.maxMessageSize);
if (channel.tryReceiveInto(into) !== undefined) throw new Error('a message before the first');
console.log('ready');
let received = 0, start = 0;
for (;;) {
  let length;
  try {
    length = channel.tryReceiveInto(into);
  } catch (error) {
    if (error.code === 'ERR_ENDED') break;
    throw error;
  }
  if (length === undefined) continue;
  if (length !== 64) throw new Error('a message of ' + length + ' bytes');
  if (++received === ${warm}) start = performance.now();
}
if (received <= ${warm}) throw new Error('only ' + received + ' messages');
console.log(((received - ${warm}) / (performance.now() - start) / 1000).toFixed(2));
channel.close();`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => consumer.on('exit', resolve));
    // the clock starts once the consumer holds its role and polls
    await new Promise((resolve, reject) => {
      consumer.stdout.setEncoding('utf8').on('data', (text) => {
        printed += text;
        if (printed.startsWith('ready\n')) resolve();
      });
      void exited.then(() => reject(new Error('the Node consumer ended before it was ready')));
    });
    const message = Buffer.alloc(64, 7);
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end)
      for (let i = 0; i < 1000; i++)
        while (!channel.trySend(message))
          if (performance.now() > end + 10_000) throw new Error('the Node consumer stopped taking messages'); // it died: the ring stays full
    channel.end();
    if ((await exited) !== 0) throw new Error('the Node consumer failed');
    return Number(printed.slice('ready\n'.length).trim());
  } finally {
    channel.close();
  }
}

for (let round = 1; round <= Number(values.rounds); round++) {
  const node = await nodePair();
  let line = `round ${round}: Node ${node.toFixed(2)} M msgs/s`;
  if (values.c !== undefined) {
    const c = Number(execFileSync(values.c, [String(seconds), String(warm)], { encoding: 'utf8' }).trim());
    line += `, C ${c.toFixed(2)} M msgs/s (Node/C ${(node / c).toFixed(2)})`;
  }
  console.log(line);
}
