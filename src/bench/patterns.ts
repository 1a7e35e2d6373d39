// Fan-out and work-queue benchmarks (issue 22): shmchan's 'broadcast' and 'mpmc'
// modes against unix sockets, in the same run. Every process is fresh; each prints
// "ready", then the runner gives all of them the same measured window (see
// pattern-trial.ts), so every rate is over the same stretch of time.
// - fan-out 1 -> N: one producer, N subscribers; per-subscriber messages/s and the
//   producer's CPU time per message. shmchan writes each message once into a
//   'broadcast' channel; the alternative encodes it once and writes it to N sockets.
//   With 'overwrite' also once with the subscribers stopped (SIGSTOP) once they
//   subscribed: the producer's own work per message, without N running subscribers
//   sharing the machine's cores with it.
// - work queue 4 -> 4: each message to one of 4 workers. shmchan: an 'mpmc' channel.
//   The alternative: the 4 producers write to a dispatcher process that hands each
//   message to the next worker in turn (bench/README.md says why).
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Channel } from '../index';
import { startTrialProcess, stopTrialProcesses, type TrialProcess } from './trial-process';

const trialScript = path.join(__dirname, 'pattern-trial.js');

/** What each process of a pattern trial is told. */
export interface PatternSpec {
  mechanism: string;
  /** the channel's name, or the prefix of the abstract unix sockets */
  address: string;
  producers: number;
  consumers: number;
  /** a receiver's number, from 0 */
  index: number;
}

interface Plan {
  pattern: 'fanout' | 'workqueue';
  mechanism: string;
  producers: number;
  consumers: number;
}

export const patternMechanisms: Record<string, string> = {
  'broadcast-block': "shmchan 'broadcast', overflow 'block'",
  'broadcast-overwrite': "shmchan 'broadcast', overflow 'overwrite'",
  'broadcast-overwrite-stopped': "shmchan 'broadcast', overflow 'overwrite', subscribers stopped",
  sockets: 'unix sockets, one per subscriber',
  mpmc: "shmchan 'mpmc'",
  dispatcher: 'unix sockets via a dispatcher process',
};

const plans: Plan[] = [
  ...[1, 4, 16].flatMap((consumers) =>
    ['broadcast-block', 'broadcast-overwrite', 'broadcast-overwrite-stopped', 'sockets'].map((mechanism): Plan => ({ pattern: 'fanout', mechanism, producers: 1, consumers })),
  ),
  { pattern: 'workqueue', mechanism: 'mpmc', producers: 4, consumers: 4 },
  { pattern: 'workqueue', mechanism: 'dispatcher', producers: 4, consumers: 4 },
];

export interface PatternResult extends Plan {
  /** messages/s each receiver got in the window: the mean over receivers, and the slowest */
  perConsumer: number;
  slowestConsumer: number;
  /** messages/s all receivers got together */
  total: number;
  /** CPU time (user + system) of the producers per message they sent, ns */
  producerCpuNs: number;
  /** of which in the kernel (system time), ns */
  producerSystemNs: number;
  /** messages the subscribers missed ('overwrite' only) */
  lost: number;
}

interface ProcessResult {
  messages: number;
  msgsPerSec: number;
  cpuNsPerMessage: number;
  systemNsPerMessage: number;
  lost?: number;
}

/** A trial process in `role`; its stdin takes the go line. */
function start(role: string, spec: PatternSpec): TrialProcess<ProcessResult> {
  return startTrialProcess<ProcessResult>(trialScript, [role, JSON.stringify(spec)], 'pipe', role);
}

/** One trial in fresh processes; its channel is removed after, whatever happened. */
async function runOne(plan: Plan, timing: { warmMs: number; measureMs: number }, prefix: string): Promise<PatternResult> {
  const address = plan.mechanism === 'sockets' || plan.mechanism === 'dispatcher' ? `\0${prefix}${plan.mechanism}` : `${prefix}${plan.mechanism}`;
  const spec = (index: number): PatternSpec => ({ mechanism: plan.mechanism, address, producers: plan.producers, consumers: plan.consumers, index });
  let channel: Channel | undefined;
  if (plan.mechanism.startsWith('broadcast'))
    channel = Channel.create(address, { mode: 'broadcast', maxConsumers: Math.max(16, plan.consumers), overflow: plan.mechanism === 'broadcast-block' ? 'block' : 'overwrite' });
  else if (plan.mechanism === 'mpmc') channel = Channel.create(address, { mode: 'mpmc' });
  const stopped = plan.mechanism.endsWith('-stopped');
  const children: ChildProcess[] = [];
  const started = <T extends ReturnType<typeof start>>(p: T) => (children.push(p.child), p);
  try {
    const shm = channel !== undefined;
    const receivers = Array.from({ length: plan.consumers }, (_, i) => started(start(shm ? 'shmchan-receiver' : 'socket-receiver', spec(i))));
    await Promise.all(receivers.map((r) => r.ready));
    if (stopped) for (const r of receivers) r.child.kill('SIGSTOP');
    const middle = plan.mechanism === 'dispatcher' ? [started(start('dispatcher', spec(0)))] : [];
    await Promise.all(middle.map((r) => r.ready));
    const producerRole = shm ? 'shmchan-producer' : plan.mechanism === 'sockets' ? 'socket-fanout' : 'socket-producer';
    const producers = Array.from({ length: plan.producers }, (_, i) => started(start(producerRole, spec(i))));
    await Promise.all(producers.map((r) => r.ready));
    // every process must have read the go line before the warm-up starts: time for
    // each to be scheduled once on a loaded machine
    const from = Date.now() + 100 + 20 * children.length + timing.warmMs;
    for (const c of children) c.stdin!.end(`${from} ${from + timing.measureMs}\n`);
    const sent = await Promise.all(producers.map((p) => p.result));
    if (stopped) for (const r of receivers) r.child.kill('SIGCONT');
    channel?.end();
    const got = await Promise.all(receivers.map((r) => r.result));
    await Promise.all(middle.map((r) => r.result));
    const rates = got.map((r) => r.msgsPerSec);
    const sentMessages = sent.reduce((a, r) => a + r.messages, 0);
    if (sentMessages === 0) throw new Error(`${plan.mechanism}: the producers sent nothing in the measured window`);
    return {
      ...plan,
      perConsumer: rates.reduce((a, b) => a + b, 0) / rates.length,
      slowestConsumer: Math.min(...rates),
      total: rates.reduce((a, b) => a + b, 0),
      producerCpuNs: sent.reduce((a, r) => a + r.cpuNsPerMessage * r.messages, 0) / sentMessages,
      producerSystemNs: sent.reduce((a, r) => a + r.systemNsPerMessage * r.messages, 0) / sentMessages,
      lost: got.reduce((a, r) => a + (r.lost ?? 0), 0),
    };
  } finally {
    await stopTrialProcesses(children);
    channel?.close();
    if (channel !== undefined)
      try {
        Channel.unlink(address);
      } catch {
        // already removed by close() (unlinkOnClose)
      }
  }
}

/**
 * Every pattern trial once, in this run. A trial that fails is run once more in
 * fresh processes (on a loaded machine a process can miss the whole window); one
 * that fails twice is left out of the results and named in `failures`.
 */
export async function runPatternTrials(
  timing: { warmMs: number; measureMs: number },
  prefix: string,
  progress: (text: string) => void,
): Promise<{ results: PatternResult[]; failures: { row: string; error: string }[] }> {
  const results: PatternResult[] = [];
  const failures: { row: string; error: string }[] = [];
  for (const plan of plans) {
    const row = `${plan.pattern} ${plan.producers} -> ${plan.consumers}: ${plan.mechanism}`;
    progress(`${row}...`);
    for (let attempt = 1; ; attempt++)
      try {
        results.push(await runOne(plan, timing, prefix));
        break;
      } catch (error) {
        const text = String((error as Error).message ?? error);
        progress(`${row}: failed (${text})${attempt === 1 ? ', trying again' : ''}`);
        if (attempt === 2) {
          failures.push({ row, error: text });
          break;
        }
      }
  }
  return { results, failures };
}

// ---- as text ----

const rate = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(0)} k/s`);
const find = (rs: PatternResult[], mechanism: string, consumers: number) => rs.find((r) => r.mechanism === mechanism && r.consumers === consumers);

/** A goal of issue 22, checked on this run's rows: a ratio and its limit. */
export interface PatternTarget {
  id: string;
  text: string;
  mechanism: string;
  measured: number;
  limit: number;
  pass: boolean;
}

/** Fan-out: each broadcast variant per subscriber against the sockets, with 4 subscribers.
 * Producer cost: with 16 subscribers over with 1, for every fan-out mechanism. */
export function patternTargets(rs: PatternResult[]): PatternTarget[] {
  const targets: PatternTarget[] = [];
  const sockets = find(rs, 'sockets', 4);
  for (const mechanism of ['broadcast-block', 'broadcast-overwrite']) {
    const r = find(rs, mechanism, 4);
    // a ratio only where the reference got something in the window (a loaded machine can starve one)
    if (r !== undefined && sockets !== undefined && sockets.slowestConsumer > 0) {
      const measured = r.slowestConsumer / sockets.slowestConsumer;
      targets.push({ id: 'fanout-vs-sockets', text: '1 -> 4 per subscriber (slowest) >= 5 x unix sockets', mechanism, measured, limit: 5, pass: measured >= 5 });
    }
  }
  for (const mechanism of ['broadcast-block', 'broadcast-overwrite', 'broadcast-overwrite-stopped', 'sockets']) {
    const [one, sixteen] = [find(rs, mechanism, 1), find(rs, mechanism, 16)];
    if (one === undefined || sixteen === undefined || !(one.producerCpuNs > 0)) continue;
    const measured = sixteen.producerCpuNs / one.producerCpuNs;
    // "the same" read as within a quarter: one trial of a producer alone varies that much
    targets.push({ id: 'producer-cost', text: 'producer CPU per message, 16 subscribers / 1 subscriber <= 1.25', mechanism, measured, limit: 1.25, pass: measured <= 1.25 });
  }
  return targets;
}

export function patternTable(rs: PatternResult[]): string {
  const lines = ['| fan-out and work queue | producers → receivers | per receiver (mean, slowest) | all receivers | producer CPU per message (in the kernel) | lost |', '|---|---:|---:|---:|---:|---:|'];
  for (const r of rs)
    lines.push(
      `| ${patternMechanisms[r.mechanism]} | ${r.producers} → ${r.consumers} | ${rate(r.perConsumer)}, ${rate(r.slowestConsumer)} | ${rate(r.total)} | ${Math.round(r.producerCpuNs)} ns (${Math.round(r.producerSystemNs)}) | ${r.lost} |`,
    );
  const mpmc = rs.find((r) => r.mechanism === 'mpmc');
  const dispatcher = rs.find((r) => r.mechanism === 'dispatcher');
  const notes = mpmc !== undefined && dispatcher !== undefined ? [`Work queue 4 → 4: shmchan 'mpmc' moves ${(mpmc.total / dispatcher.total).toFixed(1)}× the messages of the dispatcher.`] : [];
  const targets = patternTargets(rs).map(
    (t) => `| ${t.text} | ${patternMechanisms[t.mechanism]} | ${t.measured.toFixed(2)} | ${t.limit} | ${t.pass ? 'pass' : 'MISS'} |`,
  );
  if (targets.length > 0) notes.push('', '| target (issue 22, item 5), informational | mechanism | measured | limit | |', '|---|---|---:|---:|---|', ...targets);
  return [...lines, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n') + '\n';
}
