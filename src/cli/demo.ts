// `shmchan demo`: the classic spooler. Several client processes put print jobs
// into one mpsc channel; one spooler process prints them in arrival order and a
// summary. The processes share nothing but the channel's name.
import { spawn } from 'node:child_process';
import { Channel } from '../core/channel';
import { expectPositionals, type Command } from './command';

interface Job {
  client: number;
  pid: number;
  seq: number;
  text: string;
  at: Date;
}

const CLIENTS = 4;
const JOBS_PER_CLIENT = 50_000;
const PRINTED = 12;
const documents = ['report.pdf', 'invoice-2026-11.odt', 'Präsentation.key', '発注書.xlsx', 'notes.txt', 'photo 🐈.jpg'];

function say(role: string, text: string): void {
  process.stdout.write(`[${role} ${process.pid}] ${text}\n`);
}

async function client(name: string, id: number, count: number): Promise<void> {
  const channel = Channel.open<Job>(name, { timeout: 10_000 });
  for (let seq = 0; seq < count; seq++) {
    const job = { client: id, pid: process.pid, seq, text: `print ${documents[(seq + id) % documents.length]}`, at: new Date() };
    if (!channel.trySend(job)) await channel.send(job);
  }
  say(`client ${id}`, `queued ${count.toLocaleString('en-US')} jobs`);
  channel.close();
}

async function spooler(name: string): Promise<void> {
  const channel = Channel.open<Job>(name, { timeout: 10_000 });
  say('spooler', `printing jobs from '${name}' in arrival order (the first ${PRINTED}, then a summary)`);
  const perClient = new Map<number, { pid: number; jobs: number; next: number }>();
  let total = 0;
  let start = 0n;
  for await (const job of channel) {
    if (total === 0) start = process.hrtime.bigint();
    const seen = perClient.get(job.client) ?? { pid: job.pid, jobs: 0, next: 0 };
    if (job.seq !== seen.next) throw new Error(`client ${job.client}: job ${job.seq} arrived where ${seen.next} was expected`);
    seen.jobs++;
    seen.next = job.seq + 1;
    perClient.set(job.client, seen);
    if (total < PRINTED) say('spooler', `#${total + 1} from client ${job.client} (pid ${job.pid}), job ${job.seq}: ${job.text}`);
    total++;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  say('spooler', `end of stream: ${total.toLocaleString('en-US')} jobs in ${(seconds * 1000).toFixed(0)} ms = ${(total / seconds / 1e6).toFixed(2)} M jobs/s`);
  for (const [id, { pid, jobs }] of [...perClient].sort((a, b) => a[0] - b[0]))
    say('spooler', `  client ${id} (pid ${pid}): ${jobs.toLocaleString('en-US')} jobs, each client's in order`);
  channel.close();
}

export const demo: Command = {
  synopsis: 'demo                               the spooler: one consumer and several producer processes',
  help: `usage: shmchan demo

The spooler: starts one spooler process and four client processes that share
only an mpsc channel name; the spooler prints jobs in arrival order and a summary.
`,
  options: {},
  run: async (_values, positionals) => {
    expectPositionals(positionals, 0, '');
    return runDemo();
  },
};

async function runDemo(): Promise<number> {
  const name = `shmchan-spool-${process.pid}`;
  const channel = Channel.create(name, { mode: 'mpsc', capacity: 1 << 20 });
  say('demo', `created mpsc channel '${name}' (${channel.capacity / 1024} KiB ring); starting a spooler and ${CLIENTS} client processes`);
  const start = (...args: string[]) =>
    new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [__filename, ...args], { stdio: 'inherit' });
      child.on('exit', (code) => resolve(code ?? 1));
    });
  try {
    const spooled = start('spooler', name);
    const clients = Array.from({ length: CLIENTS }, (_, id) => start('client', name, String(id), String(JOBS_PER_CLIENT)));
    const codes = await Promise.all(clients);
    channel.end(); // every client is done: the spooler drains the ring, then sees the end
    codes.push(await spooled);
    const stats = channel.stats();
    say('demo', `channel stats: ${stats.messagesSent.toLocaleString('en-US')} sent, ${stats.messagesReceived.toLocaleString('en-US')} received, ${(stats.bytesSent / 1e6).toFixed(1)} MB`);
    return codes.every((code) => code === 0) ? 0 : 1;
  } finally {
    channel.close();
  }
}

if (require.main === module) {
  const [role, name, id, count] = process.argv.slice(2);
  (role === 'client' ? client(name, Number(id), Number(count)) : spooler(name)).catch((error) => {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  });
}
