// `shmchan demo`: the classic spooler. Several client processes put print jobs
// into one mpsc channel; one spooler process prints them in arrival order and a
// summary. The processes share nothing but the channel's name. With --backend
// sysv it runs as the classic programs did: a System V segment, System V
// semaphores, N client processes.
import { spawn } from 'node:child_process';
import { Channel } from '../core/channel';
import type { Backend } from '../core/options';
import { UsageError, expectPositionals, type Command, type Values } from './command';

interface Job {
  client: number;
  pid: number;
  seq: number;
  text: string;
  at: Date;
}

const CLIENTS = 4;
const JOBS_PER_CLIENT = 50_000;
const MAX_CLIENTS = 64; // an mpsc channel's producers
const PRINTED = 12;
const documents = ['report.pdf', 'invoice-2026-11.odt', 'Präsentation.key', '発注書.xlsx', 'notes.txt', 'photo 🐈.jpg'];

function say(role: string, text: string): void {
  process.stdout.write(`[${role} ${process.pid}] ${text}\n`);
}

async function client(name: string, backend: Backend, id: number, count: number): Promise<void> {
  const channel = Channel.open<Job>(name, { timeout: 10_000, backend });
  for (let seq = 0; seq < count; seq++) {
    const job = { client: id, pid: process.pid, seq, text: `print ${documents[(seq + id) % documents.length]}`, at: new Date() };
    if (!channel.trySend(job)) await channel.send(job);
  }
  say(`client ${id}`, `queued ${count.toLocaleString('en-US')} jobs`);
  channel.close();
}

async function spooler(name: string, backend: Backend): Promise<void> {
  const channel = Channel.open<Job>(name, { timeout: 10_000, backend });
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
  synopsis: 'demo [--backend sysv] [--clients N] [--jobs N]   the spooler: one consumer, N producer processes',
  help: `usage: shmchan demo [--backend posix|sysv] [--clients N] [--jobs N]

The spooler: starts one spooler process and N client processes that share
only an mpsc channel name; the spooler prints jobs in arrival order and a summary.

  --backend B   'posix' (default: shm_open and futexes) or 'sysv' (a System V
                segment and semaphore set, as the classic spooler used)
  --clients N   client processes, 1 to ${MAX_CLIENTS} (default ${CLIENTS})
  --jobs N      print jobs each client queues (default ${JOBS_PER_CLIENT.toLocaleString('en-US')})
  -h, --help    show this help
`,
  options: { backend: { type: 'string' }, clients: { type: 'string' }, jobs: { type: 'string' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    const backend = values.backend ?? 'posix';
    if (backend !== 'posix' && backend !== 'sysv') throw new UsageError(`--backend must be 'posix' or 'sysv', got '${backend}'`);
    return runDemo(backend, count(values, 'clients', CLIENTS, MAX_CLIENTS), count(values, 'jobs', JOBS_PER_CLIENT, 10_000_000));
  },
};

function count(values: Values, option: string, fallback: number, max: number): number {
  const text = values[option];
  if (text === undefined) return fallback;
  const n = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text) || n < 1 || n > max)
    throw new UsageError(`--${option} must be a whole number from 1 to ${max.toLocaleString('en-US')}, got '${text}'`);
  return n;
}

async function runDemo(backend: Backend, clients: number, jobs: number): Promise<number> {
  const name = `shmchan-spool-${process.pid}`;
  const channel = Channel.create(name, { mode: 'mpsc', capacity: 1 << 20, backend });
  const where = backend === 'sysv' ? `System V segment, key 0x${channel.key!.toString(16).padStart(8, '0')}` : 'POSIX shared memory';
  say('demo', `created mpsc channel '${name}' (${channel.capacity / 1024} KiB ring, ${where}); starting a spooler and ${clients} client processes`);
  const start = (...args: string[]) =>
    new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [__filename, ...args], { stdio: 'inherit' });
      child.on('exit', (code) => resolve(code ?? 1));
    });
  try {
    const spooled = start('spooler', name, backend);
    const started = Array.from({ length: clients }, (_, id) => start('client', name, backend, String(id), String(jobs)));
    const codes = await Promise.all(started);
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
  const [role, name, backend, id, jobs] = process.argv.slice(2) as [string, string, Backend, string, string];
  (role === 'client' ? client(name, backend, Number(id), Number(jobs)) : spooler(name, backend)).catch((error) => {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  });
}
