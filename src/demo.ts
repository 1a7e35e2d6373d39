// `shmchan demo`: two separate processes, one producing orders and one consuming
// them, that share nothing but the channel's name.
import { spawn } from 'node:child_process';
import { Channel } from './channel';

interface Order {
  id: number;
  item: string;
  quantity: number;
  at: Date;
}

const items = ['coffee', 'tea', 'croissant', 'bagel', 'juice', 'muffin', 'crêpe', '抹茶'];
const MESSAGES = 200_000;

function say(role: string, text: string): void {
  process.stdout.write(`[${role} ${process.pid}] ${text}\n`);
}

function rate(count: number, since: bigint): string {
  const seconds = Number(process.hrtime.bigint() - since) / 1e9;
  return `${count.toLocaleString('en-US')} messages in ${(seconds * 1000).toFixed(0)} ms = ${(count / seconds / 1e6).toFixed(2)} M msgs/s`;
}

async function produce(name: string, count: number): Promise<void> {
  const channel = Channel.open<Order>(name, { timeout: 10_000 });
  say('producer', `opened '${name}', sending ${count.toLocaleString('en-US')} orders`);
  const start = process.hrtime.bigint();
  for (let id = 0; id < count; id++) {
    const order = { id, item: items[id % items.length], quantity: 1 + (id % 3), at: new Date() };
    if (!channel.trySend(order)) await channel.send(order);
  }
  channel.end();
  say('producer', `sent ${rate(count, start)}, then end()`);
  channel.close();
}

async function consume(name: string): Promise<void> {
  const channel = Channel.open<Order>(name, { timeout: 10_000 });
  say('consumer', `opened '${name}', waiting for orders`);
  let received = 0;
  let start = 0n;
  let last: Order | undefined;
  for await (const order of channel) {
    if (received === 0) start = process.hrtime.bigint();
    if (order.id !== received) throw new Error(`order ${order.id} arrived where ${received} was expected`);
    if (received < 3) say('consumer', `got ${JSON.stringify(order)}`);
    last = order;
    received++;
  }
  say('consumer', `last ${JSON.stringify(last)}`);
  say('consumer', `received ${rate(received, start)}, in order, then the end of the stream`);
  channel.close();
}

export async function runDemo(): Promise<number> {
  const name = `shmchan-demo-${process.pid}`;
  const channel = Channel.create(name, { capacity: 1 << 20 });
  say('demo', `created channel '${name}' (/dev/shm/${name}, ${channel.capacity / 1024} KiB ring); starting two processes`);
  const start = (role: string, ...args: string[]) =>
    new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [__filename, role, name, ...args], { stdio: 'inherit' });
      child.on('exit', (code) => resolve(code ?? 1));
    });
  try {
    const codes = await Promise.all([start('consume'), start('produce', String(MESSAGES))]);
    const stats = channel.stats();
    say('demo', `stats: ${stats.messagesSent} sent, ${stats.messagesReceived} received, ${stats.bytesSent} bytes, ended: ${stats.ended}`);
    return codes.every((code) => code === 0) ? 0 : 1;
  } finally {
    channel.close();
  }
}

if (require.main === module) {
  const [role, name, count] = process.argv.slice(2);
  (role === 'produce' ? produce(name, Number(count)) : consume(name)).catch((error) => {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  });
}
