// The benchmark scripts run from a clone with `node bench/NAME.mjs` run end to end
// with tiny counts: each exits 0, prints a line for every case it names, and leaves
// no channel behind. No assertion here is about speed.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

function runScript(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(packageRoot, 'bench', script), ...args], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const leftovers = (prefix: string) => readdirSync('/dev/shm').filter((file) => file.startsWith(prefix));

it('service-floor times the service and each of its channel paths, and removes its channels', async () => {
  const run = await runScript('service-floor.mjs', ['--round-trips', '200', '--rounds', '1']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines.map((line) => line.slice(0, 26).trim())).toEqual([
    'spsc + spsc, bare values',
    'spsc + spsc, envelopes',
    'mpsc + mpsc, envelopes',
    'mpmc + mpsc, envelopes',
    'Service and Client',
  ]);
  for (const line of lines) expect(line).toMatch(/p50 \d+\.\d\d µs +p90 \d+\.\d\d µs$/);
  expect(leftovers('bench-floor-')).toEqual([]);
}, 60_000);

it('wake-steps stamps every step for a number and for the small object, and removes its channels', async () => {
  const run = await runScript('wake-steps.mjs', ['--round-trips', '20', '--rounds', '1']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines.map((line) => line.slice(0, 12).trim())).toEqual(['number', 'small object']);
  for (const line of lines)
    for (const step of ['make', 'send', 'until the peer has it', 'peer echoes', 'until the echo is here', 'round trip']) expect(line).toMatch(new RegExp(`${step} -?\\d+\\.\\d`));
  expect(leftovers('bench-wake-steps-')).toEqual([]);
}, 60_000);

it('raw-floor times raw 64 B one way in Node and, built with the C library, in C, and removes its channels', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'shmchan-raw-floor-'));
  try {
    // as its header says, with the library built elsewhere than build-c/
    execFileSync('make', ['-s', 'lib', `BUILD=${work}`], { cwd: packageRoot });
    const program = path.join(work, 'raw-floor');
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-Inative/include', '-o', program, 'bench/raw-floor.c', path.join(work, 'libshmchan.a'), '-lpthread'], { cwd: packageRoot });
    const run = await runScript('raw-floor.mjs', ['--seconds', '0.5', '--rounds', '2', '--warm', '1000', '--c', program]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^round ${i + 1}: Node \\d+\\.\\d\\d M msgs/s, C \\d+\\.\\d\\d M msgs/s \\(Node/C \\d+\\.\\d\\d\\)$`)));
    expect(leftovers('bench-raw-floor-')).toEqual([]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 120_000);
