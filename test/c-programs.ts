// The C library and the programs of examples/c for one test file: built into a
// directory of that test process, as a fresh clone builds them, and started as
// separate processes that share nothing with the test but the channel's name.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { cleanupChannels, killFixtures, packageRoot } from './helpers';

export interface CResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CProgram {
  child: ChildProcess;
  /** Resolves once stderr has a line containing `text`. */
  stderrLine(text: string): Promise<void>;
  done: Promise<CResult>;
}

export interface CPrograms {
  /** The test file's directory: `lib` (libshmchan.a) and `bin` (the programs) are in it. */
  work: string;
  lib: string;
  bin: string;
  /** Starts a program of `bin`; with `input`, writes it to its stdin (else stdin is /dev/null). */
  start(program: string, args: string[], input?: string): CProgram;
  /** Runs a program of `bin` to its end; throws, with its stderr, unless it exits 0. */
  run(program: string, args: string[], input?: string): Promise<CResult>;
}

/** More flags for every C program a test builds, and for the library: the sanitizer
 * step's (SHMCHAN_TEST_CFLAGS, set by scripts/test-asan.sh), or none. */
export const extraCFlags: string[] = (process.env.SHMCHAN_TEST_CFLAGS ?? '').split(' ').filter((flag) => flag !== '');

/**
 * Builds the library and the example programs before the file's tests (-Werror:
 * they build without a warning; under npm run test:asan, with the sanitizers too); after each test kills the programs still
 * running and the fixtures, and removes the test's channels; after all the tests
 * removes the directory. Call it once, at the top of a test file.
 */
export function useCPrograms(label: string): CPrograms {
  const work = mkdtempSync(path.join(os.tmpdir(), `shmchan-${label}-`));
  const lib = path.join(work, 'lib');
  const bin = path.join(work, 'bin');
  const running = new Set<ChildProcess>();

  beforeAll(() => {
    execFileSync('make', ['-s', '-C', 'examples/c', `BUILD=${lib}`, `OUT=${bin}`, `CFLAGS=${['-Werror', ...extraCFlags].join(' ')}`], { cwd: packageRoot });
  }, 300_000);

  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
    killFixtures();
    cleanupChannels();
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  function start(program: string, args: string[], input?: string): CProgram {
    const child = spawn(path.join(bin, program), args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // a program that fails early closes its stdin
      child.stdin!.end(input);
    }
    running.add(child);
    let stdout = '';
    let stderr = '';
    const waiting: Array<{ text: string; resolve: () => void }> = [];
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const w of waiting) if (stderr.includes(w.text)) w.resolve();
    });
    const done = new Promise<CResult>((resolve) =>
      child.on('close', (code) => {
        running.delete(child);
        resolve({ code, stdout, stderr });
      }),
    );
    return {
      child,
      done,
      stderrLine: (text) =>
        new Promise<void>((resolve, reject) => {
          if (stderr.includes(text)) return resolve();
          waiting.push({ text, resolve });
          void done.then((r) => reject(new Error(`${program} exited (${r.code}) before '${text}': ${r.stderr}`)));
        }),
    };
  }

  async function run(program: string, args: string[], input?: string): Promise<CResult> {
    const result = await start(program, args, input).done;
    if (result.code !== 0) throw new Error(`${program} ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result;
  }

  return { work, lib, bin, start, run };
}
