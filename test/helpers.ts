// Shared test plumbing: unique channel names, spawned fixture processes, cleanup,
// and suites that run once per backend.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, type CreateOptions, type OpenOptions, type SysvKey } from '../dist/index.js';
import * as layout from '../dist/core/layout.js';

export const fixturesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const packageRoot = path.join(fixturesDir, '..', '..');

const prefix = `shmchan-test-${process.pid}-`;
let counter = 0;
/** System V keys this test process may have used: derived from its names, or given. */
const sysvKeys = new Set<number>();

/** A channel name no other test (or test run) uses; cleanupChannels() removes it. */
export function uniqueName(label: string): string {
  const name = `${prefix}${label}-${counter++}`;
  sysvKeys.add(sysvKeyOf(name));
  return name;
}

/** Registers a System V key a test uses directly, so cleanupChannels() removes what has it. */
export function trackKey(key: number): number {
  sysvKeys.add(key >>> 0);
  return key;
}

/** The key the README documents for a name: 32-bit FNV-1a of the name without '/', 0 -> 1. */
export function sysvKeyOf(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name.replace(/^\//, ''))) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash === 0 ? 1 : hash;
}

export interface SysvRow {
  key: number; // unsigned
  id: number;
  perms: number; // including flags such as SHM_DEST (0o1000)
  fields: string[];
}

/** The rows of /proc/sysvipc/shm or /proc/sysvipc/sem (keys as unsigned numbers). */
export function sysvRows(kind: 'shm' | 'sem'): SysvRow[] {
  const [, ...lines] = readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n');
  return lines.map((line) => {
    const fields = line.trim().split(/\s+/);
    return { key: Number(fields[0]) >>> 0, id: Number(fields[1]), perms: parseInt(fields[2], 8), fields };
  });
}

/** Removes every channel this test process (or its fixtures) created: POSIX names
 * with its prefix, and System V segments and semaphore sets with its keys, whatever
 * state they were left in. */
export function cleanupChannels(): void {
  for (const file of readdirSync('/dev/shm')) if (file.startsWith(prefix)) Channel.unlink(file);
  for (const kind of ['shm', 'sem'] as const)
    for (const row of sysvRows(kind))
      if (sysvKeys.has(row.key)) execFileSync('ipcrm', [kind === 'shm' ? '-m' : '-s', String(row.id)]);
}

export type Backend = 'posix' | 'sysv';
export const backends: Backend[] = ['posix', 'sysv'];

/** Whether anything of a channel of this backend exists under the name: for System
 * V, a segment or a semaphore set with the name's derived key. */
export function channelExists(backend: Backend, name: string): boolean {
  if (backend === 'posix') return existsSync(`/dev/shm/${name}`);
  const key = sysvKeyOf(name);
  return [...sysvRows('shm'), ...sysvRows('sem')].some((row) => row.key === key);
}

/**
 * Channel calls and fixtures bound to one backend, for suites written once and
 * run for each backend (describe.each(backends)). Fixtures learn the backend
 * from SHMCHAN_TEST_BACKEND (test/fixtures/backend.mjs).
 */
export function using(backend: Backend) {
  return {
    backend,
    create: <T = unknown>(name: string, options: CreateOptions<T> = {}) => Channel.create<T>(name, { ...options, backend }),
    open: <T = unknown>(name: string, options: OpenOptions<T> = {}) => Channel.open<T>(name, { ...options, backend }),
    unlink: (name: string, options: { key?: SysvKey } = {}) => Channel.unlink(name, { ...options, backend }),
    exists: (name: string) => channelExists(backend, name),
    startFixture: (file: string, args: string[] = [], options: FixtureOptions = {}) =>
      startFixture(file, args, { ...options, backend }),
    runFixture: (file: string, args: string[] = []) => runFixture(file, args, backend),
  };
}

export interface Fixture {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line that contains `text`. */
  line(text: string): Promise<string>;
}

const children = new Set<ChildProcess>();

export interface FixtureOptions {
  uid?: number;
  gid?: number;
  backend?: Backend;
  /** A command that runs node for the fixture, e.g. pidNamespace: killing the
   * fixture's process then kills that command. */
  wrap?: string[];
  /** More environment variables for the fixture. */
  env?: NodeJS.ProcessEnv;
}

/** Runs a fixture as pid 1 of a new pid namespace (and its own /proc), killed with
 * the unshare process that starts it. */
export const pidNamespace = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];

/** SIGKILLs a fixture started in a pid namespace (its pid 1, hence all of it) and
 * resolves once that process is dead: not merely its unshare parent. */
export async function killPidNamespace(fixture: Fixture): Promise<void> {
  const inside = childrenOf(fixture.child.pid!);
  for (const pid of inside) process.kill(pid, 'SIGKILL');
  for (const pid of inside) while (isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 5));
  await fixture.exited;
}

/** The processes whose parent is `parent`, from /proc/PID/stat. */
function childrenOf(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** True until a process has exited (a zombie has: its files are closed). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Why fixtures cannot run in a new pid namespace here, or undefined when they can. */
export function pidNamespaceRefusal(): string | undefined {
  try {
    execFileSync(pidNamespace[0], [...pidNamespace.slice(1), 'true'], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    const { stderr, message } = error as { stderr?: Buffer; message: string };
    return (stderr?.toString().trim() || message).split('\n')[0];
  }
}

/** The environment a fixture process gets: which backend its channels use. */
export function fixtureEnv(backend: Backend = 'posix'): NodeJS.ProcessEnv {
  return { ...process.env, SHMCHAN_TEST_BACKEND: backend };
}

/** Starts test/fixtures/<file> in a new node process. */
export function startFixture(file: string, args: string[] = [], options: FixtureOptions = {}): Fixture {
  const { backend, wrap = [], env, ...ids } = options;
  const command = [...wrap, process.execPath, path.join(fixturesDir, file), ...args];
  const child = spawn(command[0], command.slice(1), {
    cwd: packageRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...fixtureEnv(backend), ...env },
    ...ids,
  });
  children.add(child);
  let out = '';
  let err = '';
  const waiters: { text: string; resolve: (line: string) => void }[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const waiter of [...waiters]) {
      const found = out.split('\n').find((l) => l.includes(waiter.text));
      if (found !== undefined) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(found);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  // 'close', not 'exit': after 'exit' the last of its stdout may still be on the way
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    line: (text) =>
      new Promise((resolve, reject) => {
        const found = out.split('\n').find((l) => l.includes(text));
        if (found !== undefined) return resolve(found);
        waiters.push({ text, resolve });
        exited.then(({ code, signal }) =>
          reject(new Error(`${file} exited (${code ?? signal}) before printing "${text}"\nstdout: ${out}\nstderr: ${err}`)),
        );
      }),
  };
}

/** Runs a fixture to completion and parses the JSON it prints last. */
export async function runFixture(file: string, args: string[] = [], backend?: Backend): Promise<any> {
  const fixture = startFixture(file, args, { backend });
  const { code, signal } = await fixture.exited;
  if (code !== 0) throw new Error(`${file} failed (${code ?? signal})\nstdout: ${fixture.stdout()}\nstderr: ${fixture.stderr()}`);
  const lines = fixture.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * Resolves once check() holds, looking again every 5 ms. After a minute it throws,
 * naming `what` (the hang guard: it turns "never" into a failure, not a speed limit).
 */
export async function until(check: () => boolean, what = 'a condition never held'): Promise<void> {
  for (const giveUp = Date.now() + 60_000; !check(); ) {
    if (Date.now() > giveUp) throw new Error(`hang guard: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Kills every fixture still running (after a failed test). */
export function killFixtures(): void {
  for (const child of children) child.kill('SIGKILL');
}

/**
 * Whether a producer sleeps for room on the segment of `i32`: announced and the
 * space line armed. Announcing and arming are two steps, and arming moves the
 * line's sequence, so a test that reads the sequence to see whether anyone woke
 * the producer must read it after both.
 */
export function sleepingForRoom(i32: Int32Array): boolean {
  return Atomics.load(i32, layout.OFF_SPACE_WAITERS >> 2) > 0 && (Atomics.load(i32, layout.OFF_SPACE_SEQ >> 2) & layout.SEQ_ARMED) !== 0;
}

/**
 * The header of a claim of 64 bytes at ring offset 0 by producer slot 5 in a
 * generation nobody holds: a producer that died after storing its claim's length,
 * before it committed. Hex, for scribble.mjs at the ring's first byte (8192); the
 * tail is left where it was (0) unless the test moves it.
 */
export function deadClaimHex(): string {
  const marker = (0x80000000 | (5 << 22) | 4_000_000) >>> 0;
  const header = Buffer.alloc(8);
  header.writeInt32LE(-64, 0);
  header.writeUInt32LE(marker, 4);
  return header.toString('hex');
}
