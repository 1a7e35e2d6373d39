// node bench/idiomatic.mjs [--count 1000000] [--rounds 3]: small objects from one
// process to another, sent and received two ways, alternated in one run:
//   expert:    trySend (await send() when full); tryReceive until empty, then await receive()
//   idiomatic: the README's example code, await send() for every message and for await
// The rate counts from the first message that arrives to the end of the stream.
// Run it alone: it is a timing.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from 'shmchan';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' }, producer: { type: 'string' }, name: { type: 'string' } },
});
const count = Number(values.count);
const payload = Buffer.alloc(64, 0x5a);

if (values.producer !== undefined) {
  const channel = Channel.open(values.name);
  const message = { seq: 0, ts: 0, kind: 'tick', payload };
  for (let i = 0; i < count; i++) {
    message.seq = i;
    message.ts = Date.now();
    if (values.producer === 'idiomatic') await channel.send(message);
    else if (!channel.trySend(message)) await channel.send(message);
  }
  channel.end();
  channel.close();
} else {
  async function run(way) {
    const name = `bench-idiomatic-${process.pid}`;
    const channel = Channel.create(name);
    const producer = fork(fileURLToPath(import.meta.url), ['--producer', way, '--name', name, '--count', String(count)]);
    let received = 0;
    let t0 = 0;
    const arrived = () => {
      if (received++ === 0) t0 = performance.now();
    };
    if (way === 'idiomatic') {
      for await (const message of channel) arrived(message);
    } else {
      try {
        for (;;) {
          while (channel.tryReceive() !== undefined) arrived();
          await channel.receive();
          arrived();
        }
      } catch (error) {
        if (error.code !== 'ERR_ENDED') throw error;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    channel.close();
    await new Promise((resolve) => producer.once('exit', resolve));
    if (received !== count) throw new Error(`${way}: ${received} of ${count} messages arrived`);
    return count / seconds / 1e6;
  }
  const rates = { expert: [], idiomatic: [] };
  for (let round = 0; round < Number(values.rounds); round++) for (const way of Object.keys(rates)) rates[way].push(await run(way));
  const list = (r) => r.map((v) => v.toFixed(3)).join(', ');
  console.log(`${count} small objects, one process to another, M msgs/s per round (node bench/idiomatic.mjs)`);
  console.log(`expert     ${list(rates.expert)}`);
  console.log(`idiomatic  ${list(rates.idiomatic)}   (per round: ${rates.idiomatic.map((v, i) => (v / rates.expert[i]).toFixed(2)).join(', ')} of expert)`);
}
