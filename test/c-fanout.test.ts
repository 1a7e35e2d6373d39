// The C library on the fan-out modes: a C subscriber (examples/c/subscriber) next to
// a Node subscriber on a broadcast channel, and a C worker (examples/c/worker) next
// to a Node worker on an mpmc channel, with Node producers; processes share nothing
// but the channel's name. The C programs print each message as hex, so every byte
// they received is checked here.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { useCPrograms } from './c-programs';
import { backends, deadClaimHex, uniqueName, sleepingForRoom, until, using } from './helpers';
import * as layout from '../dist/core/layout.js';
import { consumerWords } from '../dist/core/fanout.js';

const { start } = useCPrograms('c-fanout');

const packr = new Packr({ useRecords: false });

/** The messages a C program printed as hex lines, decoded as mpsc-producer.mjs's { p, i, bytes }. */
function decodeHexLines(stdout: string): Array<{ p: number; i: number; bytes: Buffer }> {
  const lines = stdout.split('\n');
  expect(lines.pop()).toBe('');
  return lines.map((line) => packr.unpack(Buffer.from(line, 'hex')));
}

/** Every byte of a message, as mpsc-producer.mjs made it: the same encoding, compared whole. */
function expectIntact(messages: Array<{ p: number; i: number; bytes: Buffer }>, hexLines: string): void {
  const lines = hexLines.split('\n').slice(0, messages.length);
  messages.forEach(({ p, i }, n) => {
    const sent = packr.pack({ p, i, bytes: Buffer.alloc((i * 7 + p) % 300, (i + p) & 0xff) }).toString('hex');
    if (lines[n] !== sent) expect({ n, p, i, line: lines[n] }).toEqual({ n, p, i, line: sent });
  });
}

const report = (fixture: { stdout(): string }) => {
  const lines = fixture.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
};

describe.each(backends)('%s', (backend) => {
  const b = using(backend);
  const backendFlags = backend === 'sysv' ? ['--sysv'] : [];

  it('broadcast: a C subscriber and a Node subscriber get the same sequence from 2 Node producers, every byte', async () => {
    const name = uniqueName('c-bc');
    const channel = b.create(name, { mode: 'broadcast', capacity: 8 * 1024 });
    try {
      const node = b.startFixture('subscriber.mjs', [name, 'latest']);
      const c = start('subscriber', [name, '--hex', '--timeout', '10000', ...backendFlags]);
      await Promise.all([node.line('subscribed'), c.stderrLine('subscribed')]);
      expect(channel.stats().consumers).toBe(2);
      const sent = await Promise.all([0, 1].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '10000'])));
      expect(sent).toEqual([{ sent: 10_000 }, { sent: 10_000 }]);
      channel.end();
      const result = await c.done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: 'subscribed\n' });
      expect((await node.exited).code).toBe(0);
      const fromNode = report(node);
      expect(fromNode).toMatchObject({ received: 20_000, lost: 0, next: { 0: 10_000, 1: 10_000 }, problems: [] });

      const fromC = decodeHexLines(result.stdout);
      expectIntact(fromC, result.stdout);
      const hash = createHash('sha256');
      for (const { p, i } of fromC) hash.update(`${p}:${i},`);
      expect(fromC.length).toBe(20_000);
      expect(hash.digest('hex')).toBe(fromNode.hash);
      expect(channel.stats()).toMatchObject({ messagesSent: 20_000, consumers: 0 });
    } finally {
      channel.close();
    }
  });

  it('broadcast from the oldest: a C subscriber also gets what is still in the ring', async () => {
    const name = uniqueName('c-bc-oldest');
    const channel = b.create<Buffer>(name, { mode: 'broadcast', capacity: 8 * 1024, codec: 'raw' });
    try {
      const early = [Buffer.from('first'), Buffer.alloc(0), Buffer.from([0, 1, 2, 255])];
      for (const m of early) channel.sendSync(m);
      const c = start('subscriber', [name, '--oldest', '--hex', ...backendFlags]);
      await c.stderrLine('subscribed');
      channel.sendSync(Buffer.from('after'));
      channel.end();
      const result = await c.done;
      expect(result).toEqual({ code: 0, stdout: [...early, Buffer.from('after')].map((m) => m.toString('hex') + '\n').join(''), stderr: 'subscribed\n' });
    } finally {
      channel.close();
    }
  });

  it("'block': a C subscriber that reads everything wakes no producer while a slower subscriber holds the room", async () => {
    const name = uniqueName('c-bc-room');
    const channel = b.create(name, { mode: 'broadcast', capacity: 16 * 1024 });
    const holder = b.open<{ p: number; i: number; bytes: Buffer }>(name);
    try {
      expect(holder.tryReceive()).toBeUndefined(); // subscribed, at the head
      const c = start('subscriber', [name, '--hex', '--timeout', '10000', ...backendFlags]);
      await c.stderrLine('subscribed');
      c.child.kill('SIGSTOP');
      const i32: Int32Array = channel['ring'].i32;
      const producer = b.runFixture('mpsc-producer.mjs', [name, '0', '2000']);
      await until(() => sleepingForRoom(i32), 'the producer never slept for room');
      const before = Atomics.load(i32, layout.OFF_SPACE_SEQ >> 2);
      c.child.kill('SIGCONT');
      // it has read everything once a subscriber's cursor is at the tail, and is done
      // with that read once it sleeps again
      const atTail = () =>
        Array.from({ length: 16 }, (_, slot) => consumerWords(slot)).some(
          (w) => Atomics.load(i32, w.owner) !== 0 && Atomics.load(i32, w.position * 2) === Atomics.load(i32, layout.OFF_TAIL >> 2),
        );
      await until(atTail, 'the C subscriber never read everything');
      await until(() => readFileSync(`/proc/${c.child.pid}/stat`, 'utf8').split(') ')[1].startsWith('S'), 'the C subscriber never slept again');
      expect((Atomics.load(i32, layout.OFF_SPACE_SEQ >> 2) - before) >>> 0).toBe(0);
      let read = 0;
      await until(() => {
        for (let m; (m = holder.tryReceive()) !== undefined; read++) if (m.i !== read) throw new Error(`message ${m.i} where ${read} was due`);
        return read === 2000;
      }, 'the holder never read everything');
      expect(await producer).toEqual({ sent: 2000 });
      channel.end();
      const result = await c.done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: 'subscribed\n' });
      const fromC = decodeHexLines(result.stdout);
      expect(fromC.map(({ i }) => i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
      expectIntact(fromC, result.stdout);
    } finally {
      holder.close();
      channel.close();
    }
  });

  it('mpmc: a C worker and a Node worker take 2 Node producers\' messages exactly once, every byte', async () => {
    const name = uniqueName('c-mpmc');
    const channel = b.create(name, { mode: 'mpmc', capacity: 8 * 1024 });
    try {
      const node = b.startFixture('worker.mjs', [name]);
      const c = start('worker', [name, '--hex', '--timeout', '10000', ...backendFlags]);
      await node.line('started');
      // the C worker takes its consumer slot on its first receive
      await until(() => channel.stats().consumers >= 2);
      const sent = await Promise.all([0, 1].map((id) => b.runFixture('mpsc-producer.mjs', [name, String(id), '10000'])));
      expect(sent).toEqual([{ sent: 10_000 }, { sent: 10_000 }]);
      channel.end();
      const result = await c.done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      expect((await node.exited).code).toBe(0);
      expect(report(node).problems).toEqual([]);

      const fromC = decodeHexLines(result.stdout);
      expectIntact(fromC, result.stdout);
      expect(fromC.length).toBeGreaterThan(0);
      const fromNode = node
        .stdout()
        .split('\n')
        .filter((line) => /^\d+:\d+$/.test(line));
      const all = [...fromC.map(({ p, i }) => `${p}:${i}`), ...fromNode];
      expect(all.length).toBe(20_000);
      expect(new Set(all).size).toBe(20_000);
      // 20,000 distinct messages, all among those sent: each of them exactly once
      expect(all.filter((t) => !/^[01]:\d+$/.test(t) || Number(t.split(':')[1]) >= 10_000)).toEqual([]);
      // each worker sees each producer's messages in send order
      for (const taken of [fromC.map(({ p, i }) => `${p}:${i}`), fromNode])
        for (const p of [0, 1]) {
          const seq = taken.filter((t) => t.startsWith(`${p}:`)).map((t) => Number(t.split(':')[1]));
          expect(seq.every((i, n) => n === 0 || i > seq[n - 1])).toBe(true);
        }
      expect(channel.stats()).toMatchObject({ messagesSent: 20_000, messagesReceived: 20_000, used: 0 });
    } finally {
      channel.close();
    }
  });

  /** Line i: mixed scripts and lengths, so records of many sizes wrap a small ring. */
  const words = ['hello', 'grüße', 'Привет', '你好世界', '🚀✨', 'e\u0301', ''];
  const line = (i: number) => `${i} ${words[i % words.length]}`.repeat(1 + ((i * 5) % 23));
  /** The strings a C program printed as hex lines of msgpack strings. */
  const hexStrings = (stdout: string) => decodeHexLines(stdout) as unknown as string[];

  it.each(['mpmc', 'block', 'overwrite'] as const)(
    'a C producer on %s: C and Node receivers get its lines, every byte',
    async (kind) => {
      const name = uniqueName(`c-fanout-producer-${kind}`);
      const mode = kind === 'mpmc' ? 'mpmc' : 'broadcast';
      const channel = b.create(name, { mode, capacity: 4096, ...(kind === 'overwrite' ? { overflow: 'overwrite' as const } : {}) });
      try {
        const sent = Array.from({ length: 3000 }, (_, i) => line(i));
        const node = b.startFixture('values-receiver.mjs', [name]);
        const c = start(mode === 'mpmc' ? 'worker' : 'subscriber', [name, '--hex', '--timeout', '10000', ...backendFlags]);
        await node.line('ready');
        if (mode === 'broadcast') await c.stderrLine('subscribed');
        else await until(() => channel.stats().consumers >= 2);
        // 'overwrite': receivers stopped while the producer laps them (it never waits)
        const receivers = [node.child, c.child];
        if (kind === 'overwrite') for (const r of receivers) r.kill('SIGSTOP');
        const producer = start('producer', [name, ...backendFlags], sent.join('\n') + '\n');
        expect(await producer.done).toEqual({ code: 0, stdout: '', stderr: '' });
        if (kind === 'overwrite') for (const r of receivers) r.kill('SIGCONT');
        const result = await c.done;
        expect(result.code).toBe(0);
        expect((await node.exited).code).toBe(0);
        const fromNode: string[] = report(node).received;
        const fromC = hexStrings(result.stdout);
        if (kind === 'mpmc') {
          // exactly once overall, each receiver in send order
          expect([...fromC, ...fromNode].sort()).toEqual([...sent].sort());
          for (const taken of [fromC, fromNode]) expect(taken).toEqual(sent.filter((s) => taken.includes(s)));
        } else if (kind === 'block') {
          expect(result.stderr).toBe('subscribed\n');
          expect(fromC).toEqual(sent);
          expect(fromNode).toEqual(sent);
        } else {
          // lapped subscribers lose messages, never get one twice or out of order or damaged
          for (const got of [fromC, fromNode]) {
            const order = got.map((s) => sent.indexOf(s));
            expect(order.every((at, n) => at >= 0 && (n === 0 || at > order[n - 1]))).toBe(true);
            expect(got[got.length - 1]).toBe(sent[sent.length - 1]);
          }
          // exact accounting: every message either arrived or was counted lost
          expect(report(node).lost).toBeGreaterThan(0);
          expect(fromNode.length + report(node).lost).toBe(sent.length);
          const lapped = [...result.stderr.matchAll(/lapped: (\d+) messages lost so far/g)].map((m) => Number(m[1]));
          expect(lapped.length).toBeGreaterThan(0);
          expect(fromC.length + lapped.at(-1)!).toBe(sent.length);
        }
      } finally {
        channel.close();
      }
    },
  );

  it('mpmc: records taken by Node workers killed before returning them go to the C worker, nothing lost or doubled', async () => {
    const name = uniqueName('c-mpmc-kills');
    const channel = b.create(name, { mode: 'mpmc', capacity: 8 * 1024 });
    try {
      const c = start('worker', [name, '--hex', '--timeout', '10000', ...backendFlags]);
      await until(() => channel.stats().consumers >= 1);
      // each victim SIGKILLs itself while decoding its 3rd message: between taking it and returning it
      const victims = [0, 1, 2].map(() => b.startFixture('worker.mjs', [name, '3']));
      await Promise.all(victims.map((v) => v.line('started')));
      expect(await b.runFixture('mpsc-producer.mjs', [name, '0', '5000'])).toEqual({ sent: 5000 });
      for (const v of victims) expect((await v.exited).signal).toBe('SIGKILL');
      channel.end();
      const result = await c.done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      const fromC = decodeHexLines(result.stdout);
      expectIntact(fromC, result.stdout);
      const returned = victims.flatMap((v) =>
        v
          .stdout()
          .split('\n')
          .filter((line) => /^\d+:\d+$/.test(line)),
      );
      expect(returned.length).toBeLessThanOrEqual(victims.length * 2);
      const all = [...fromC.map(({ p, i }) => `${p}:${i}`), ...returned].sort();
      expect(all).toEqual(Array.from({ length: 5000 }, (_, i) => `0:${i}`).sort());
    } finally {
      channel.close();
    }
  });

  // A producer that died between claiming a record and committing it: a claim of 64
  // bytes at ring offset 0 by producer slot 5 in a generation nobody holds, and the
  // tail past it. Only the C receiver can turn it into padding (under the release
  // lock): under 'block' a release stops at the subscriber's cursor, and the mpmc
  // producer lacks no room before the worker has taken the message after it. The
  // laps after it need that lock given back.
  it.each(['mpmc', 'broadcast'] as const)(
    "%s: a C receiver steps over a dead producer's unfinished claim and gets every message after it, every byte",
    async (mode) => {
      const name = uniqueName(`c-dead-claim-${mode}`);
      const channel = b.create<Buffer>(name, { mode, capacity: 4096, codec: 'raw' });
      try {
        const c = start(mode === 'mpmc' ? 'worker' : 'subscriber', [name, '--hex', ...backendFlags]);
        if (mode === 'broadcast') await c.stderrLine('subscribed');
        else await until(() => channel.stats().consumers >= 1);
        await b.runFixture('scribble.mjs', [name, '8192', deadClaimHex()]);
        await b.runFixture('scribble.mjs', [name, '128', '40000000']); // tail := 64
        const sent = Array.from({ length: 300 }, (_, i) => Buffer.alloc(1 + ((i * 37) % 200), i & 0xff));
        channel.sendSync(sent[0]);
        if (mode === 'mpmc') await until(() => channel.stats().messagesReceived >= 1);
        for (const m of sent.slice(1)) channel.sendSync(m, { timeout: 10_000 });
        channel.end();
        const result = await c.done;
        expect(result).toEqual({
          code: 0,
          stdout: sent.map((m) => m.toString('hex') + '\n').join(''),
          stderr: mode === 'broadcast' ? 'subscribed\n' : '',
        });
        expect(channel.stats().messagesSent).toBe(sent.length);
      } finally {
        channel.close();
      }
    },
  );

  it("broadcast 'block': a C subscriber stopped, then killed with SIGKILL, is dropped and holds nobody back", async () => {
    const name = uniqueName('c-bc-kill');
    const channel = b.create(name, { mode: 'broadcast', capacity: 4096 });
    try {
      const live = b.startFixture('subscriber.mjs', [name, 'latest']);
      const victim = start('subscriber', [name, '--hex', ...backendFlags]);
      await Promise.all([live.line('subscribed'), victim.stderrLine('subscribed')]);
      victim.child.kill('SIGSTOP'); // it holds its slot and reads nothing: producers wait for it
      const producer = b.runFixture('mpsc-producer.mjs', [name, '0', '20000']);
      await until(() => channel.stats().used >= 2048);
      victim.child.kill('SIGKILL');
      await victim.done;
      expect(await producer).toEqual({ sent: 20_000 });
      channel.end();
      expect((await live.exited).code).toBe(0);
      expect(report(live)).toMatchObject({ received: 20_000, lost: 0, problems: [] });
      expect(channel.stats().consumers).toBe(0);
    } finally {
      channel.close();
    }
  });

  it("broadcast 'overwrite': a C subscriber stopped while a Node producer laps it loses messages, and says exactly how many", async () => {
    const name = uniqueName('c-bc-lapped');
    const channel = b.create<Buffer>(name, { mode: 'broadcast', capacity: 4096, codec: 'raw', overflow: 'overwrite' });
    try {
      const c = start('subscriber', [name, '--hex', ...backendFlags]);
      await c.stderrLine('subscribed');
      c.child.kill('SIGSTOP');
      const sent = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(8 + (i % 50), i & 0xff));
      for (const m of sent) expect(channel.trySend(m)).toBe(true); // 'overwrite': never full
      channel.end();
      c.child.kill('SIGCONT');
      const result = await c.done;
      expect(result.code).toBe(0);
      const got = result.stdout.split('\n').slice(0, -1);
      const lapped = [...result.stderr.matchAll(/lapped: (\d+) messages lost so far/g)].map((m) => Number(m[1]));
      expect(lapped.length).toBeGreaterThan(0);
      // what it got is the tail of what was sent, byte for byte, after exactly the messages it lost
      expect(got.length + lapped.at(-1)!).toBe(sent.length);
      expect(got).toEqual(sent.slice(lapped.at(-1)!).map((m) => m.toString('hex')));
    } finally {
      channel.close();
    }
  });

  it("broadcast: a C producer making room ignores a RELEASING that is not on a record boundary (it would read past the ring)", async () => {
    const name = uniqueName('c-bc-releasing');
    const channel = b.create<Buffer>(name, { mode: 'broadcast', capacity: 4096, codec: 'raw', overflow: 'overwrite' });
    try {
      for (let i = 0; i < 64; i++) expect(channel.trySend(Buffer.alloc(56, i))).toBe(true); // 64-byte records: the ring is full
      await b.runFixture('scribble.mjs', [name, String(layout.OFF_RELEASING), 'fd0f0000']); // 4093: the ring's last word
      const line = 'y'.repeat(56);
      const result = await start('producer', [name, '--raw', '--keep-open', ...backendFlags], `${line}\n`).done;
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      expect(channel.stats()).toMatchObject({ messagesSent: 65 });
    } finally {
      channel.close();
    }
  });

  it('mpmc: a C worker that finds the release lock held does not look at a head off a record boundary (it would read past the ring)', async () => {
    const name = uniqueName('c-mpmc-odd-head');
    const channel = b.create(name, { mode: 'mpmc', capacity: 4096 });
    try {
      channel.sendSync('x'); // the record at 0, the tail at 16
      await b.runFixture('scribble.mjs', [name, String(layout.OFF_RELEASE_LOCK), '0500c04f']); // consumer slot 63's, nobody's
      await b.runFixture('scribble.mjs', [name, String(layout.OFF_HEAD), 'ffffffff']); // ring index 4095
      const c = start('worker', [name, '--hex', ...backendFlags]);
      channel.end();
      const result = await c.done;
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 0, stdout: `${packr.pack('x').toString('hex')}\n` });
    } finally {
      channel.close();
    }
  });
});
