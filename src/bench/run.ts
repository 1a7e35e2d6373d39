// The benchmark runner: shmchan against a pipe, a unix socket, child_process IPC
// and worker_threads MessagePort, on this machine, in this run. The CLI's bench
// command is its one entry point (shmchan bench --help; npm run bench -- ... is
// the same).
//
// Every (scenario, message, mechanism) trial runs in fresh processes: this runner
// starts `node dist/bench/trial.js SPEC` for it, in a process group of its own, and
// reads one line of JSON back. The channels, FIFOs and socket a trial uses are
// named here and removed here afterwards, whatever became of the trial.
// SHMCHAN_BENCH_TINY=1 makes every trial a few milliseconds long (for the test);
// SHMCHAN_BENCH_API=async|sync picks which shmchan calls the round trips use.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Channel } from '../index';
import { mechanismById, mechanisms, messageBytes, messageKinds, type Durations, type TrialSpec } from './drivers';
import { markdownReport, svgChart, textReport, withRatiosAndTargets, type Result, type TrialError } from './report';
import { scenarios } from './scenarios';
import { runServiceTrials, serviceTable, type ServiceResult } from './services';
import { patternTable, patternTargets, runPatternTrials, type PatternResult } from './patterns';
import { medianOf, processTicks, resultOf } from './trial-process';

const trialScript = path.join(__dirname, 'trial.js');

type Mode = 'full' | 'quick' | 'tiny';

// Throughput trials (one-way, 4 -> 1) are run `repeats` times, each in fresh
// processes, and report the median: one trial of the same code can come out far
// slower or faster than the next, whole trials at a time, so three shorter trials
// say more than one long one.
const durationSets: Record<Mode, Durations> = {
  full: { warmMs: 200, measureMs: 800, parkedMs: 2000, wakeup: { warmCount: 50, count: 1000 }, throughput: { repeats: 3, measureMs: 400 } },
  quick: { warmMs: 60, measureMs: 150, parkedMs: 300, wakeup: { warmCount: 10, count: 150 }, throughput: { repeats: 1, measureMs: 150 } },
  tiny: { warmMs: 10, measureMs: 30, parkedMs: 100, wakeup: { warmCount: 2, count: 8 }, throughput: { repeats: 2, measureMs: 30 } },
};

function cpuModel(): string {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    return line?.split(':')[1].trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

/** 1, 5 and 15 minute load averages. */
const loadAverage = () => os.loadavg().map((l) => Number(l.toFixed(2)));

/**
 * Which code a run measures: the commit, the files of src/ and native/ that differ
 * from it, and when dist/ (what the trials load) was last built. Outside a git
 * checkout only the last.
 */
function codeState(): { distBuiltAt: string; commit?: string; changed?: string[] } {
  const dist = path.join(__dirname, '..');
  const root = path.join(dist, '..');
  const builtMs = Math.max(0, ...fs.readdirSync(dist).map((f) => fs.statSync(path.join(dist, f)).mtimeMs));
  const state: ReturnType<typeof codeState> = { distBuiltAt: new Date(builtMs).toISOString() };
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
    state.commit = git('rev-parse', '--short=12', 'HEAD');
    state.changed = git('status', '--porcelain', '--', 'src', 'native')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.slice(3));
  } catch {
    // not a git checkout (an installed package): dist/ is all there is
  }
  return state;
}

interface CpuTicks {
  busy: number;
  total: number;
  own: number;
}

/** Clock ticks: every core's busy and total time, and this process's with its reaped
 * children's (every trial and peer), so what others used in between can be told apart. */
function cpuTicks(): CpuTicks {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const self = processTicks('self');
  return { busy: total - fields[3] - fields[4], total, own: self.own + self.children };
}

/** Cores that processes other than the benchmark's kept busy between two cpuTicks(), on average. */
function othersBusyCores(before: CpuTicks, after: CpuTicks, cores: number): number {
  const span = after.total - before.total;
  if (span <= 0) return 0;
  return Math.max(0, ((after.busy - before.busy - (after.own - before.own)) / span) * cores);
}

/** A planned trial: what its processes are told, less what the runner adds for each run. */
type Trial = Omit<TrialSpec, 'role' | 'index' | 'resources'>;

function planTrials(only: string | undefined, mode: Mode, api: TrialSpec['api']): Trial[] {
  const filter = only === undefined ? null : new RegExp(only);
  const durations = durationSets[mode];
  const trials: Trial[] = [];
  for (const [scenarioId, scenario] of Object.entries(scenarios))
    for (const message of mode === 'full' ? scenario.messages : scenario.quickMessages ?? scenario.messages)
      for (const mechanism of scenario.peers === 0 ? [null] : mechanisms) {
        if (mechanism !== null && scenario.multiProducer && !mechanism.multiProducer) continue;
        if (mechanism?.messages !== undefined && !mechanism.messages.includes(message)) continue;
        const id = `${scenarioId}/${message}/${mechanism?.id ?? 'msgpackr'}`;
        if (filter !== null && !filter.test(id)) continue;
        const { repeats, measureMs } = scenario.throughput ? durations.throughput : { repeats: 1, measureMs: durations.measureMs };
        trials.push({ id, scenario: scenarioId, message, mechanism: mechanism?.id ?? null, peers: scenario.peers, durations: { ...durations, measureMs }, repeats, api });
      }
  return trials;
}

/** What a trial's main process measured, with the runner's additions. */
type Measurement = Omit<Result, 'scenario' | 'message' | 'mechanism'>;

/** The median trial by rate, with every trial's rate beside it. */
function medianTrial(results: Measurement[]): Measurement {
  return { ...medianOf(results, (r) => r.msgsPerSec!), trialRates: results.map((r) => r.msgsPerSec!) };
}

function describeResult(result: Measurement): string {
  const millions = (rate: number) => (rate / 1e6).toFixed(3);
  if (result.p50 !== undefined) return `p50 ${result.p50.toFixed(1)} µs`;
  if (result.trialRates !== undefined) return `${millions(result.msgsPerSec!)} M msgs/s (median of ${result.trialRates.map(millions).join(', ')})`;
  if (result.msgsPerSec !== undefined) return `${millions(result.msgsPerSec)} M msgs/s`;
  if (result.cpuPercent !== undefined) return `${result.cpuPercent.toFixed(2)} % CPU`;
  if (result.encodePerSec !== undefined) return `encode ${(result.encodePerSec / 1e6).toFixed(2)} M/s`;
  return '';
}

/** Where the report or the progress goes: process.stdout and stderr by default. */
type Output = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

class Progress {
  stream: Output;
  total: number;
  tty: boolean;

  constructor(stream: Output, total: number) {
    this.stream = stream;
    this.total = total;
    this.tty = stream.isTTY === true;
  }

  label(index: number, trial: Trial): string {
    const m = trial.mechanism === null ? 'msgpackr' : mechanismById[trial.mechanism].label;
    return `[${String(index + 1).padStart(String(this.total).length)}/${this.total}] ${trial.scenario} · ${messageKinds[trial.message].label} · ${m}`;
  }

  start(index: number, trial: Trial): void {
    if (this.tty) this.stream.write(`\r\x1b[K${this.label(index, trial).slice(0, (this.stream.columns ?? 80) - 1)}`);
  }

  done(index: number, trial: Trial, text: string): void {
    const line = `${this.label(index, trial)}: ${text}`;
    if (this.tty) this.stream.write(`\r\x1b[K${line.slice(0, (this.stream.columns ?? 80) - 1)}`);
    else this.stream.write(`${line}\n`);
  }

  finish(text: string): void {
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}${text}\n`);
  }
}

type Outcome = { ok: true; result: Measurement } | { ok: false; error: string };

/** Runs one trial's main process to the end (or its deadline); removes what it used. */
async function runTrial(trial: Trial, index: number, prefix: string): Promise<Outcome> {
  const mechanism = trial.mechanism === null ? null : mechanismById[trial.mechanism];
  const resources: TrialSpec['resources'] = {
    channels: [`${prefix}${index}-down`, `${prefix}${index}-up`],
    socket: `\0${prefix}${index}`,
    dir: mechanism?.family === 'pipe' ? fs.mkdtempSync(path.join(os.tmpdir(), prefix)) : null,
  };
  const spec: TrialSpec = { ...trial, role: 'main', resources };
  const deadlineMs = 20_000 + 3 * scenarios[trial.scenario].budgetMs(trial.durations);
  const removeResources = () => {
    if (mechanism?.family === 'shmchan')
      for (const name of resources.channels)
        try {
          Channel.unlink(name, { backend: mechanism.backend });
        } catch {
          // already gone, or never made
        }
    if (resources.dir !== null) fs.rmSync(resources.dir, { recursive: true, force: true });
  };
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [trialScript, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  current = { child, removeResources };
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => killGroup(child), deadlineMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  killGroup(child); // peers left behind by a trial that failed
  current = null;
  removeResources();
  if (code === 0) {
    try {
      const trialSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      return { ok: true, result: { ...resultOf<Measurement>(stdout), trialSeconds } };
    } catch {
      // fall through: a failure
    }
  }
  const why = signal === 'SIGKILL' ? `no result within ${deadlineMs / 1000} s` : signal !== null ? `killed by ${signal}` : `exit code ${code}`;
  const detail = stderr.trim().split('\n').filter(Boolean).slice(0, 3).join(' | ');
  return { ok: false, error: detail ? `${why}: ${detail}` : why };
}

/** The trial running now: its process group and what it uses, for an interruption. */
let current: { child: ChildProcess; removeResources: () => void } | null = null;

/** Bad options: `usage` tells a caller to exit with status 2. */
function usageError(message: string): Error & { usage: boolean } {
  return Object.assign(new Error(message), { usage: true });
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

/** The bench command's options, as parsed; the report and the progress go to
 * stdout and stderr. */
export interface BenchOptions {
  quick?: boolean;
  json?: boolean;
  markdown?: boolean;
  /** a file to write the chart to */
  svg?: string;
  /** a regular expression over scenario/message/mechanism */
  only?: string;
  stdout?: Output;
  stderr?: Output;
}

/**
 * Runs the benchmarks and prints the report. Resolves with the exit status: 0, or
 * 1 when a trial failed (a missed speed target is reported, not an error).
 * Rejects with an error whose `usage` is true for bad options.
 */
export async function runBench(options: BenchOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const mode: Mode = process.env.SHMCHAN_BENCH_TINY === '1' ? 'tiny' : options.quick ? 'quick' : 'full';
  const api = process.env.SHMCHAN_BENCH_API ?? 'sync';
  if (api !== 'sync' && api !== 'async') throw usageError(`SHMCHAN_BENCH_API must be 'sync' or 'async', got '${api}'`);
  if (options.only !== undefined)
    try {
      new RegExp(options.only);
    } catch {
      throw usageError(`--only must be a regular expression, got '${options.only}'`);
    }
  const trials = planTrials(options.only, mode, api);
  const withServiceTrials = options.only === undefined || new RegExp(options.only).test('request/reply service');
  const withPatternTrials = options.only === undefined || new RegExp(options.only).test('fan-out work-queue broadcast mpmc patterns');
  if (trials.length === 0 && !withServiceTrials && !withPatternTrials) throw usageError(`no trial matches --only '${options.only}'`);
  const prefix = process.env.SHMCHAN_BENCH_PREFIX ?? `shmchan-bench-${process.pid}-`;

  const onSignal = (signal: NodeJS.Signals) => {
    if (current !== null) {
      killGroup(current.child);
      current.removeResources();
    }
    process.kill(process.pid, signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.once(signal, onSignal);

  const loadAverageBefore = loadAverage();
  const ticksBefore = cpuTicks();
  const code = codeState();
  const started = process.hrtime.bigint();
  const progress = new Progress(stderr, trials.length);
  const results: Result[] = [];
  const failures: TrialError[] = [];
  const retried: TrialError[] = [];
  try {
    for (const [index, trial] of trials.entries()) {
      progress.start(index, trial);
      const row = { scenario: trial.scenario, message: trial.message, mechanism: trial.mechanism };
      const runs: Measurement[] = [];
      let outcome!: Outcome;
      for (let repeat = 0; repeat < trial.repeats; repeat++) {
        outcome = await runTrial(trial, index, prefix);
        if (!outcome.ok) {
          // One more try in fresh processes: a trial can fail for a reason of the
          // moment (a peer that took too long to start on a loaded machine). The
          // first error stays in the report; a trial that fails twice is a failure.
          retried.push({ ...row, error: outcome.error });
          progress.done(index, trial, `failed (${outcome.error}), trying again`);
          outcome = await runTrial(trial, index, prefix);
        }
        if (!outcome.ok) break;
        runs.push(outcome.result);
      }
      if (outcome.ok) {
        const result = trial.repeats > 1 ? medianTrial(runs) : runs[0];
        results.push({ ...row, ...result });
        progress.done(index, trial, describeResult(result));
      } else {
        failures.push({ ...row, error: outcome.error });
        progress.done(index, trial, `FAILED (${outcome.error})`);
      }
    }
  } finally {
    for (const signal of signals) process.removeListener(signal, onSignal);
  }
  // request/reply (Service and Client) against socket-based request/reply, in the same run
  let services: ServiceResult[] = [];
  if (withServiceTrials) {
    try {
      const { warmMs, measureMs, throughput } = durationSets[mode];
      // longer than the channel trials: a fresh client and worker take about a second
      // to reach their steady rate with 64 in flight (the JIT; bench/README.md)
      const spec = { warmMs: 5 * warmMs, measureMs: 2 * measureMs, inFlight: 64, repeats: throughput.repeats };
      services = await runServiceTrials(spec, prefix, (text) => stderr.write(`${text}\n`));
    } catch (error) {
      failures.push({ scenario: 'request/reply', message: 'small', mechanism: 'services', error: String((error as Error).message ?? error) });
    }
  }
  // fan-out ('broadcast') and work queue ('mpmc') against unix sockets, in the same run
  let patterns: PatternResult[] = [];
  if (withPatternTrials) {
    try {
      // at least 200 ms: a window this long holds messages for every one of 16 subscribers
      const { warmMs, measureMs } = durationSets[mode];
      const run = await runPatternTrials({ warmMs, measureMs: Math.max(200, measureMs) }, prefix, (text) => stderr.write(`${text}\n`));
      patterns = run.results;
      for (const { row, error } of run.failures) failures.push({ scenario: 'patterns', message: 'small', mechanism: row, error });
    } catch (error) {
      failures.push({ scenario: 'patterns', message: 'small', mechanism: 'patterns', error: String((error as Error).message ?? error) });
    }
  }
  const elapsedSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const retriedText = retried.length ? `, ${retried.length} tried twice` : '';
  progress.finish(`${trials.length} trials in ${elapsedSeconds.toFixed(1)} s${retriedText}${failures.length ? `, ${failures.length} failed` : ''}`);

  const report = withRatiosAndTargets({
    schema: 1,
    date: new Date().toISOString(),
    machine: {
      cpuModel: cpuModel(),
      cpus: os.availableParallelism?.() ?? os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      kernel: os.release(),
      loadAverageBefore,
      loadAverageAfter: loadAverage(),
      othersBusyCores: Number(othersBusyCores(ticksBefore, cpuTicks(), os.cpus().length).toFixed(2)),
    },
    code: { ...code, distRebuiltDuringRun: codeState().distBuiltAt !== code.distBuiltAt },
    mode,
    shmchanApi: api,
    durations: durationSets[mode],
    elapsedSeconds,
    mechanisms: mechanisms.map(({ id, label }) => ({ id, label })),
    messages: Object.fromEntries(Object.entries(messageKinds).map(([id, k]) => [id, { label: k.label, bytes: messageBytes(id) }])),
    results,
    failures,
    retried,
  });
  const withServices = { ...report, services, patterns, patternTargets: patternTargets(patterns) };
  if (options.svg !== undefined) fs.writeFileSync(options.svg, svgChart(report));
  if (options.json) stdout.write(`${JSON.stringify(withServices, null, 2)}\n`);
  else stdout.write((options.markdown ? markdownReport(report, options.svg) : textReport(report)) + (services.length > 0 ? `\n${serviceTable(services)}` : '') + (patterns.length > 0 ? `\n${patternTable(patterns)}` : ''));
  return failures.length === 0 ? 0 : 1;
}
