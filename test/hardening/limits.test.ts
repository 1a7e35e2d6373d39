// Resource limits: a process at its limits gets an error with errno and syscall
// on the call that needed the resource, and the channel stays usable (issue 21).
import { afterEach, describe, expect, it } from 'vitest';
import { Channel } from '../../dist/index.js';
import { cleanupChannels, killFixtures, startFixture, uniqueName } from '../helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const NOBODY = 65534;

describe.runIf(process.getuid?.() === 0)('as root, with nobody as the limited user', () => {
  it('receive() that cannot start a waiter thread fails with ERR_SYSTEM (EAGAIN, pthread_create), and the channel still works', async () => {
    const name = uniqueName('nproc');
    const channel = Channel.create(name, { capacity: 4096, permissions: 0o666 });
    try {
      const fixture = startFixture('thread-limit.mjs', [name], { uid: NOBODY, gid: NOBODY });
      const timer = setTimeout(() => fixture.child.kill('SIGKILL'), 60_000);
      const { code, signal } = await fixture.exited;
      clearTimeout(timer);
      expect({ code, signal, stderr: fixture.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
      const result = JSON.parse(fixture.stdout().trim().split('\n').pop()!);
      expect(result.receive).toMatchObject({ name: 'ShmChanError', code: 'ERR_SYSTEM', errno: 'EAGAIN', syscall: 'pthread_create' });
      expect(result.receive.message).toMatch(/thread/);
      expect(result).toMatchObject({ trySend: true, tryReceive: 'after' });
    } finally {
      channel.close();
    }
  }, 90_000);
});
