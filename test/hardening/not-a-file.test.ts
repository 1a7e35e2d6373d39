// Something other than a regular file at a channel's POSIX name, as any local
// user can make one in /dev/shm: a FIFO, which blocks a plain read-only open, or
// a directory. Every command and call answers at once and touches nothing
// (issue 21, items 5 and 6).
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killFixtures, packageRoot, startFixture, uniqueName } from '../helpers';

const bin = path.join(packageRoot, 'bin', 'shmchan.js');
const made: string[] = [];

afterEach(() => {
  killFixtures();
  for (const file of made.splice(0)) rmSync(file, { recursive: true, force: true });
});

/** Runs the CLI; a hang is killed after hangMs and fails the test (no timing is measured). */
function cli(args: string[], hangMs = 20_000): Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: packageRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), hangMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

async function tryOpen(name: string): Promise<{ result: string; code?: string; errno?: string; syscall?: string; message?: string }> {
  const child = startFixture('try-open.mjs', [name]);
  const timer = setTimeout(() => child.child.kill('SIGKILL'), 20_000);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  expect({ code, signal }, 'Channel.open hung or crashed').toEqual({ code: 0, signal: null });
  return JSON.parse(child.stdout().trim());
}

describe('a FIFO at the name', () => {
  function fifo(label: string): string {
    const name = uniqueName(label);
    execFileSync('mkfifo', [`/dev/shm/${name}`]);
    made.push(`/dev/shm/${name}`);
    return name;
  }

  it('shmchan rm refuses it at once and leaves it', async () => {
    const name = fifo('fifo-rm');
    const { status, signal, stderr } = await cli(['rm', name]);
    expect({ status, signal }).toEqual({ status: 1, signal: null });
    expect(stderr).toContain('is not a shmchan channel');
    expect(lstatSync(`/dev/shm/${name}`).isFIFO()).toBe(true);
  });

  it('shmchan stat says it is not a channel, and ls leaves it out', async () => {
    const name = fifo('fifo-stat');
    const stat = await cli(['stat', name]);
    expect({ status: stat.status, signal: stat.signal }).toEqual({ status: 1, signal: null });
    expect(stat.stderr).toContain('not a shmchan channel');
    const ls = await cli(['ls', '--json']);
    expect(ls.status).toBe(0);
    expect(JSON.parse(ls.stdout).map((c: { name: string }) => c.name)).not.toContain(name);
  });

  it('Channel.open fails with ERR_INCOMPATIBLE at once', async () => {
    const name = fifo('fifo-open');
    expect(await tryOpen(name)).toMatchObject({ result: 'error', code: 'ERR_INCOMPATIBLE' });
  });
});

describe('a directory at the name', () => {
  function directory(label: string): string {
    const name = uniqueName(label);
    mkdirSync(`/dev/shm/${name}`);
    made.push(`/dev/shm/${name}`);
    return name;
  }

  it('Channel.open fails with ERR_SYSTEM (EISDIR, shm_open), not ERR_INVALID_ARG', async () => {
    const name = directory('dir-open');
    const outcome = await tryOpen(name);
    expect(outcome).toMatchObject({ result: 'error', code: 'ERR_SYSTEM', errno: 'EISDIR', syscall: 'shm_open' });
    expect(outcome.message).toContain('directory');
  });

  it('shmchan stat says it is a directory', async () => {
    const name = directory('dir-stat');
    const { status, signal, stderr } = await cli(['stat', name]);
    expect({ status, signal }).toEqual({ status: 1, signal: null });
    expect(stderr).toContain('directory');
    expect(lstatSync(`/dev/shm/${name}`).isDirectory()).toBe(true);
  });
});
