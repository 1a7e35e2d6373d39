// `shmchan top`: rates of real producer and consumer processes, on both backends,
// as JSON and as a table, in place in a terminal, and without writing anything.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, packageRoot, uniqueName, using, type Backend } from './helpers';

const bin = path.join(packageRoot, 'bin', 'shmchan.js');
const run = promisify(execFile);
const shmchan = (...args: string[]) => run(process.execPath, [bin, ...args], { cwd: packageRoot, encoding: 'utf8' });

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

describe.each(backends)('%s', (backend: Backend) => {
  const { create, startFixture } = using(backend);

  it('--once --json: non-zero rates in and out for a channel that messages move through, with its peers and fill', async () => {
    const busy = uniqueName('top-busy');
    const idle = uniqueName('top-idle');
    const busyChannel = create(busy, { capacity: 1 << 16 });
    const idleChannel = create(idle, { capacity: 4096, mode: 'mpsc' });
    try {
      idleChannel.sendSync('waiting'); // one unread message: lag 1, some fill
      const producer = startFixture('steady-flow.mjs', [busy, 'producer']);
      const consumer = startFixture('steady-flow.mjs', [busy, 'consumer']);
      await Promise.all([producer.line('flowing'), consumer.line('flowing')]);

      const { stdout } = await shmchan('top', '--once', '--json', '--interval', '500');
      const rows = JSON.parse(stdout) as any[];
      const busyRow = rows.find((r) => r.name === busy && r.backend === backend);
      const idleRow = rows.find((r) => r.name === idle && r.backend === backend);
      expect(busyRow).toMatchObject({ mode: 'spsc', producers: 1, consumers: 1, stale: false });
      for (const field of ['messagesInPerSecond', 'messagesOutPerSecond', 'bytesInPerSecond', 'bytesOutPerSecond'])
        expect(busyRow[field], field).toBeGreaterThan(0);
      expect(busyRow.bytesInPerSecond).toBeGreaterThan(busyRow.messagesInPerSecond * 100); // each message is over 100 bytes
      expect(idleRow).toMatchObject({
        mode: 'mpsc',
        messagesInPerSecond: 0,
        messagesOutPerSecond: 0,
        bytesInPerSecond: 0,
        bytesOutPerSecond: 0,
        producers: 1,
        consumers: 0,
        lag: 1,
        stale: false,
      });
      expect(idleRow.fillPercent).toBeGreaterThan(0);
      if (backend === 'sysv') expect(busyRow.key).toEqual(expect.any(Number));
      // busiest first
      expect(rows.indexOf(busyRow)).toBeLessThan(rows.indexOf(idleRow));

      const table = (await shmchan('top', '--once', '--interval', '200')).stdout;
      expect(table).toMatch(/^shmchan top: \d+ channels?, rates over 200 ms/);
      expect(table).toMatch(/NAME +BACKEND +MODE +MSG\/S IN +MSG\/S OUT +BYTES\/S IN +BYTES\/S OUT +FILL +PRODUCERS +CONSUMERS +LAG +STALE/);
      expect(table).toMatch(new RegExp(`^${idle} +${backend} +mpsc +0 +0 +0 B +0 B +[\\d.]+% +1 +0 +1 +no$`, 'm'));
    } finally {
      busyChannel.close();
      idleChannel.close();
    }
  });
});

it('writes nothing: the header of a channel is byte for byte the same after top looked at it', async () => {
  const name = uniqueName('top-untouched');
  const { create } = using('posix');
  const channel = create(name, { capacity: 4096 });
  try {
    channel.sendSync({ unread: true });
    const header = () => readFileSync(`/dev/shm/${name}`).subarray(0, 8192);
    const before = header();
    const { stdout } = await shmchan('top', '--once', '--json', '--interval', '50');
    expect(JSON.parse(stdout).some((r: { name: string }) => r.name === name)).toBe(true);
    expect(header().equals(before)).toBe(true);
    expect(channel.stats()).toMatchObject({ producers: 1, consumerPid: null, messagesSent: 1, messagesReceived: 0 });
  } finally {
    channel.close();
  }
});

it('ends quietly when its reader stops early (| head)', async () => {
  const { stdout, stderr } = await run('sh', ['-c', `"${process.execPath}" "${bin}" top --json --interval 20 | head -n 1`], {
    cwd: packageRoot,
    encoding: 'utf8',
  });
  expect(Array.isArray(JSON.parse(stdout))).toBe(true);
  expect(stderr).toBe('');
});

it('refreshes in place in a terminal (script -qc) every interval until interrupted', async () => {
  const name = uniqueName('top-tty');
  const { create } = using('posix');
  const channel = create(name, { capacity: 4096 });
  const child = spawn('script', ['-qfc', `"${process.execPath}" "${bin}" top --interval 100`, '/dev/null'], {
    cwd: packageRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  try {
    let screen = '';
    const frames = () => screen.split('\x1b[H\x1b[J').slice(1);
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        screen += text;
        if (frames().length >= 3) resolve(); // the first two are whole once a third begins
      });
      child.on('exit', (code) => reject(new Error(`script exited (${code}) before two refreshes: ${JSON.stringify(screen)}`)));
    });
    const [first, second] = frames();
    for (const frame of [first, second]) {
      expect(frame).toMatch(/^shmchan top: \d+ channels?, rates over 100 ms/);
      expect(frame).toMatch(new RegExp(`^${name} +posix +spsc `, 'm'));
    }
  } finally {
    child.kill('SIGINT'); // script's terminal goes, and top with it
    channel.close();
  }
});
