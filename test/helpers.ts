// Shared test plumbing: unique channel names, spawned fixture processes, cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel } from '../dist/index.js';

export const fixturesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const packageRoot = path.join(fixturesDir, '..', '..');

const prefix = `shmchan-test-${process.pid}-`;
let counter = 0;

/** A channel name no other test (or test run) uses; cleanupChannels() removes it. */
export function uniqueName(label: string): string {
  return `${prefix}${label}-${counter++}`;
}

/** Removes every channel this test process (or its fixtures) created. */
export function cleanupChannels(): void {
  for (const file of readdirSync('/dev/shm')) if (file.startsWith(prefix)) Channel.unlink(file);
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

/** Starts test/fixtures/<file> in a new node process. */
export function startFixture(file: string, args: string[] = [], options: { uid?: number; gid?: number } = {}): Fixture {
  const child = spawn(process.execPath, [path.join(fixturesDir, file), ...args], {
    cwd: packageRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
    ...options,
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
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
export async function runFixture(file: string, args: string[] = []): Promise<any> {
  const fixture = startFixture(file, args);
  const { code, signal } = await fixture.exited;
  if (code !== 0) throw new Error(`${file} failed (${code ?? signal})\nstdout: ${fixture.stdout()}\nstderr: ${fixture.stderr()}`);
  const lines = fixture.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Kills every fixture still running (after a failed test). */
export function killFixtures(): void {
  for (const child of children) child.kill('SIGKILL');
}
