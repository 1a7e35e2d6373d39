// node bench/wake-count.mjs [--messages 200000] [--requests 30000] [--in-flight 64]:
// how many wake-up system calls the traffic costs, a figure the machine's load
// does not change much. Each wake-up moves a wait line's sequence (docs/protocol.md,
// "Waiting and waking"), so the moves per message are the wake-ups per message.
//  - stream: a producer process does `await send()` of small objects, this process
//    `for await`s them; moves of the data and space lines per message.
//  - service: a worker process echoes, this process keeps --in-flight requests
//    outstanding; moves of the queue's and the reply channel's data lines per request.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Channel, Client, Service, list } from 'shmchan';
import { fileURLToPath } from 'node:url';
import * as layout from '../dist/core/layout.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    requests: { type: 'string', default: '30000' },
    'in-flight': { type: 'string', default: '64' },
  },
});
const sequence = (channel, offset) => Atomics.load(channel['ring'].i32, offset >> 2) >>> 0;
const moved = (channel, offset, from) => (sequence(channel, offset) - from) >>> 0;

function peer(code) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: 'inherit' });
  return { child, exited: new Promise((resolve) => child.on('exit', resolve)) };
}

async function stream(messages) {
  const name = `wake-count-stream-${process.pid}`;
  const channel = Channel.create(name);
  try {
    const producer = peer(`
      import { Channel } from 'shmchan';
      const channel = Channel.open(${JSON.stringify(name)});
      for (let i = 0; i < ${messages}; i++) await channel.send({ i, text: 'x'.repeat(40) });
      channel.end();
      channel.close();`);
    const data = sequence(channel, layout.OFF_DATA_SEQ);
    const space = sequence(channel, layout.OFF_SPACE_SEQ);
    let received = 0;
    for await (const message of channel) if (message.i !== received++) throw new Error('out of order');
    await producer.exited;
    const per = (n) => (n / received).toFixed(4);
    return { received, dataWakeUpsPerMessage: per(moved(channel, layout.OFF_DATA_SEQ, data)), spaceWakeUpsPerMessage: per(moved(channel, layout.OFF_SPACE_SEQ, space)) };
  } finally {
    channel.close();
    Channel.unlink(name);
  }
}

async function service(requests, inFlight) {
  const name = `wake-count-service-${process.pid}`;
  const created = Service.create(name);
  const worker = peer(`
    import { Service } from 'shmchan';
    const service = Service.open(${JSON.stringify(name)});
    process.on('SIGTERM', () => { service.close(); process.exit(0); });
    await service.serve((value) => value);`);
  const client = await Client.connect(name);
  const queue = Channel.open(name);
  let reply;
  try {
    await client.request(-1); // the reply channel exists from here on
    reply = Channel.open(list().find((info) => info.name.startsWith(`${name}.reply.`)).name);
    const queueFrom = sequence(queue, layout.OFF_DATA_SEQ);
    const replyFrom = sequence(reply, layout.OFF_DATA_SEQ);
    let next = 0;
    const lane = async () => {
      while (next < requests) {
        const i = next++;
        if ((await client.request(i)) !== i) throw new Error('a reply to another request');
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    const per = (n) => (n / requests).toFixed(4);
    return { requests, inFlight, queueWakeUpsPerRequest: per(moved(queue, layout.OFF_DATA_SEQ, queueFrom)), replyWakeUpsPerRequest: per(moved(reply, layout.OFF_DATA_SEQ, replyFrom)) };
  } finally {
    worker.child.kill('SIGTERM');
    await worker.exited;
    reply?.close();
    queue.close();
    client.close();
    created.close();
  }
}

console.log(JSON.stringify({ stream: await stream(Number(values.messages)) }));
console.log(JSON.stringify({ service: await service(Number(values.requests), Number(values['in-flight'])) }));
