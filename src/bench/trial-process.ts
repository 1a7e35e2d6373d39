// How the runner and a trial process of the request/reply and pattern trials talk:
// the process prints "ready" once it can be measured against, one line of JSON with
// what it measured at the end, and a failure on stderr with exit status 1.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** The trial process's side: the runner waits for this line before it goes on. */
export function sayReady(): void {
  process.stdout.write('ready\n');
}

/** The trial process's side: prints the result as one line of JSON, then exits 0. */
export function reportResult(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

/** The trial process's side: runs its work; a failure goes to stderr, after `label`, and exits 1. */
export function runTrialProcess(label: string, work: () => Promise<unknown>): void {
  work().catch((error) => {
    process.stderr.write(`${label}: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}

/** The runner's side: the last line a trial process printed, as the JSON of its result. */
export function resultOf<R>(stdout: string): R {
  return JSON.parse(stdout.trim().split('\n').pop()!) as R;
}

/** The runner's side: kills the processes (SIGKILL) and resolves once every one has exited. */
export async function stopTrialProcesses(children: ChildProcess[]): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve)))));
}

export interface TrialProcess<R> {
  child: ChildProcess;
  /** resolves at the process's ready line; rejects if it exits before */
  ready: Promise<void>;
  /** resolves with its result once it exits 0; rejects, with its first line of stderr, otherwise */
  result: Promise<R>;
}

/** The runner's side: starts `node SCRIPT ...args`; with stdin 'pipe' the caller writes to it. */
export function startTrialProcess<R>(script: string, args: string[], stdin: 'pipe' | 'ignore', label: string): TrialProcess<R> {
  const child = spawn(process.execPath, [script, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const failure = (code: number | null) => new Error(`${label} exited with ${code}: ${stderr.trim().split('\n')[0]}`);
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) resolve();
    });
    void exited.then((code) => reject(failure(code)));
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const result = exited.then((code) => {
    if (code !== 0) throw failure(code);
    return resultOf<R>(stdout);
  });
  // a failure is reported to whoever awaits `ready` or `result`; the other one is left unheard
  ready.catch(() => {});
  result.catch(() => {});
  return { child, ready, result };
}

/** The median trial by rate: of an even number, the slower of the middle two. One
 * trial of the same build can come out far from the next, so a row is the median. */
export function medianOf<T>(trials: T[], rate: (trial: T) => number): T {
  const sorted = [...trials].sort((a, b) => rate(a) - rate(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** A clock tick of /proc's CPU times in µs: Linux reports them in 1/100 s (USER_HZ) on x86-64 and arm64. */
export const MICROS_PER_TICK = 10_000;

/** A process's CPU time in clock ticks (MICROS_PER_TICK), from /proc/PID/stat:
 * utime and stime (all its threads), then cutime and cstime (its reaped children's). */
export function processTicks(pid: number | 'self'): { own: number; children: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const [utime, stime, cutime, cstime] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 15).map(Number);
  return { own: utime + stime, children: cutime + cstime };
}
