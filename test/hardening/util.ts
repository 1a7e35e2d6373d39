// Plumbing for the hardening tests: writing into a live segment, running calls
// in a child process that may crash, and the codes that corruption may cause.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { fixturesDir, packageRoot, startFixture } from '../helpers';

/** Writes bytes into /dev/shm/NAME at a segment offset, as another process could. */
export function scribble(name: string, offset: number, bytes: Buffer): void {
  const fd = openSync(`/dev/shm/${name}`, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Little-endian u32 words (negative numbers as two's complement). */
export function u32(...words: number[]): Buffer {
  const buffer = Buffer.alloc(4 * words.length);
  words.forEach((word, i) => buffer.writeUInt32LE(word >>> 0, 4 * i));
  return buffer;
}

export const HEADER = 8192;
export const OFF = { magic: 0, version: 4, capacity: 16, maxMessage: 20, codec: 24, tail: 128, head: 256, releasing: 260, consumer: 280, structuresLength: 6148 };

export interface Outcome {
  value?: unknown;
  code?: string;
  message?: string;
}

/**
 * Opens NAME in a child, lets `corrupt` scribble on the live segment, then runs
 * the calls there. Fails if the child dies by a signal or does not finish within
 * `hangMs` (only to turn a hang into a failure: no test here measures time).
 */
export async function callsAfterCorruption(
  name: string,
  corrupt: () => void | Promise<void>,
  calls: unknown[][],
  openOptions: object = {},
  hangMs = 20_000,
  /** made before the corruption (their outcomes are not answered) */
  before: unknown[][] = [],
): Promise<Outcome[]> {
  const beforeArgs = before.length === 0 ? [] : [...before.map((c) => JSON.stringify(c)), '--go'];
  const child = startFixture('calls.mjs', [name, JSON.stringify(openOptions), ...beforeArgs, ...calls.map((c) => JSON.stringify(c))]);
  await child.line('opened');
  await corrupt();
  child.child.stdin!.end('go\n');
  const timer = setTimeout(() => child.child.kill('SIGKILL'), hangMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  expect({ code, signal, stderr: child.stderr() }, `child hung (killed after ${hangMs} ms) or crashed`).toEqual({ code: 0, signal: null, stderr: '' });
  const lines = child.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Builds test/fixtures/<name>.c (a small hostile C program, or with `flags` such
 * as -shared a library to preload) into dir; answers its path. */
export function buildCHelper(name: string, dir: string, flags: string[] = []): string {
  const out = path.join(dir, name);
  execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-Inative/include', path.join(fixturesDir, `${name}.c`), ...flags, '-o', out], { cwd: packageRoot });
  return out;
}

/** Starts a hostile C helper that prints a line once it is at work; resolves then. */
export async function startHostile(binary: string, args: string[]): Promise<ChildProcess> {
  const hostile = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve, reject) => {
      hostile.stdout!.once('data', resolve);
      hostile.once('exit', (code) => reject(new Error(`${path.basename(binary)} exited with ${code}`)));
    });
  } catch (error) {
    hostile.kill('SIGKILL');
    throw error;
  }
  return hostile;
}
