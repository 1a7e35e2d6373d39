// `shmchan demo`: the spooler, end to end on both backends: one spooler process and
// N client processes that share only the channel's name.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { backends, packageRoot, sysvRows, type Backend } from './helpers';

const bin = path.join(packageRoot, 'bin', 'shmchan.js');
const run = promisify(execFile);

describe.each(backends)('%s', (backend: Backend) => {
  it('--clients 3 --jobs 500: every job arrives, each client in order, from separate processes; the channel is gone after', async () => {
    let created: RegExpExecArray | null = null;
    try {
      const { stdout } = await run(process.execPath, [bin, 'demo', '--backend', backend, '--clients', '3', '--jobs', '500'], {
        cwd: packageRoot,
        encoding: 'utf8',
      });
      created = /^\[demo (\d+)\] created mpsc channel '([^']+)' \(1024 KiB ring, (POSIX shared memory|System V segment, key (0x[0-9a-f]{8}))\)/.exec(stdout);
      expect(created).not.toBeNull();
      expect(created![3].startsWith(backend === 'sysv' ? 'System V' : 'POSIX')).toBe(true);
      expect(stdout).toContain('[spooler ');
      expect(stdout).toContain('end of stream: 1,500 jobs');
      const clients = [...stdout.matchAll(/^\[spooler \d+\] +client (\d) \(pid (\d+)\): 500 jobs, each client's in order$/gm)];
      expect(clients.map((m) => m[1])).toEqual(['0', '1', '2']);
      const spooler = /^\[spooler (\d+)\]/m.exec(stdout)![1];
      const pids = new Set([created![1], spooler, ...clients.map((m) => m[2])]);
      expect(pids.size).toBe(5); // the demo, the spooler and three clients: five processes
      expect(stdout).toMatch(/channel stats: 1,500 sent, 1,500 received/);
      if (backend === 'posix') expect(existsSync(`/dev/shm/${created![2]}`)).toBe(false);
      else expect(sysvRows('shm').some((row) => row.key === parseInt(created![4], 16))).toBe(false);
    } finally {
      if (created !== null) Channel.unlink(created[2], { backend });
    }
  });
});
