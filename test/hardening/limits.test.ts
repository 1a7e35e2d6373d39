// Resource limits: a process at its limits gets an error with errno and syscall
// on the call that needed the resource, and the channel stays usable (issue 21).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../../dist/index.js';
import { native } from '../../dist/core/binding.js';
import { cleanupChannels, fixturesDir, killFixtures, packageRoot, startFixture, uniqueName } from '../helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const NOBODY = 65534;

describe.runIf(process.getuid?.() === 0)('as root, with nobody as the limited user', () => {
  /** Runs thread-limit.mjs as nobody, its thread limit at 1; the last line it prints. */
  async function atThreadLimit(env: Record<string, string>): Promise<Record<string, any>> {
    const name = uniqueName('nproc');
    const channel = Channel.create(name, { capacity: 4096, permissions: 0o666 });
    try {
      const fixture = startFixture('thread-limit.mjs', [name], { uid: NOBODY, gid: NOBODY, env });
      const timer = setTimeout(() => fixture.child.kill('SIGKILL'), 60_000);
      const { code, signal } = await fixture.exited;
      clearTimeout(timer);
      expect({ code, signal, stderr: fixture.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
      return JSON.parse(fixture.stdout().trim().split('\n').pop()!);
    } finally {
      channel.close();
    }
  }

  it('receive() that cannot start a waiter thread fails with ERR_SYSTEM (EAGAIN, pthread_create), and the channel still works', async () => {
    const result = await atThreadLimit({ SHMCHAN_NO_IO_URING: '1' });
    expect(result.receive).toMatchObject({ name: 'ShmChanError', code: 'ERR_SYSTEM', errno: 'EAGAIN', syscall: 'pthread_create' });
    expect(result.receive.message).toMatch(/thread/);
    expect(result).toMatchObject({ trySend: true, tryReceive: 'after' });
  }, 90_000);

  it.runIf(native.waitMechanism() === 'io_uring')('through io_uring, receive() needs no thread: at the thread limit it sleeps and is woken', async () => {
    const result = await atThreadLimit({});
    expect(result).toEqual({ receive: { value: 'during' }, trySend: true, tryReceive: 'after' });
  }, 90_000);
});

/** Runs try-create.mjs in a private IPC namespace (unshare --ipc) after writing
 * `sysctl` there: the host's limits, and other tests, are not touched. */
function createUnderLimit(sysctl: Record<string, string>, options: object): Promise<Record<string, unknown>> {
  const writes = Object.entries(sysctl).map(([file, value]) => `echo '${value}' > /proc/sys/kernel/${file}`);
  const script = [...writes, 'exec "$@"'].join(' && ');
  const args = ['--ipc', 'sh', '-c', script, 'sh', process.execPath, path.join(fixturesDir, 'try-create.mjs'), uniqueName('limit'), JSON.stringify(options)];
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', args, { cwd: packageRoot });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

describe.runIf(process.getuid?.() === 0)('System V kernel limits, in a private IPC namespace', () => {
  it('a segment over kernel.shmmax is ERR_SYSTEM (EINVAL, shmget) naming the limit, and nothing is left', async () => {
    const outcome = await createUnderLimit({ shmmax: '16384' }, { backend: 'sysv', capacity: 65536 });
    expect(outcome).toMatchObject({ result: 'error', code: 'ERR_SYSTEM', errno: 'EINVAL', syscall: 'shmget', left: { shm: 0, sem: 0 } });
    expect(outcome.message).toContain('kernel.shmmax');
  });

  it('kernel.sem allowing fewer semaphores per set than a channel needs is ERR_SYSTEM (EINVAL, semget) naming the limit, and nothing is left', async () => {
    const outcome = await createUnderLimit({ sem: '100 32000 32 128' }, { backend: 'sysv', capacity: 4096 });
    expect(outcome).toMatchObject({ result: 'error', code: 'ERR_SYSTEM', errno: 'EINVAL', syscall: 'semget', left: { shm: 0, sem: 0 } });
    expect(outcome.message).toContain('kernel.sem');
  });

  it('under limits that fit, the same create works', async () => {
    expect(await createUnderLimit({ shmmax: '16384' }, { backend: 'sysv', capacity: 4096 })).toMatchObject({ result: 'ok', left: { shm: 0, sem: 0 } });
  });
});
