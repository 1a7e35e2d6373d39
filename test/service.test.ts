// Request/reply between processes: Service workers and Clients in separate
// processes (test/fixtures/service-worker.mjs, service-client.mjs), sharing only
// the service's name. Every reply is checked against its own request, byte for byte.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client, list, Service, ShmChanError } from '../dist/index.js';
import { backends, cleanupChannels, killFixtures, packageRoot, startFixture, sysvKeyOf, sysvRows, trackKey, uniqueName, using, type Backend, type Fixture } from './helpers';
import { removeStaleReplyChannels } from '../dist/service-wire.js';

/** Every name a test's names start with (and so every reply channel of its services). */
const testPrefix = uniqueName('').replace(/-\d+$/, '');

afterEach(() => {
  killFixtures();
  // reply channels have names the tests do not choose: their System V keys are tracked once seen
  for (const channel of list()) if (channel.name.startsWith(testPrefix)) trackReplyChannels([channel.name]);
  cleanupChannels();
});

/** Registers reply channels' System V keys with cleanupChannels, which then removes
 * their segments and semaphore sets whatever state they are in. */
function trackReplyChannels(names: string[]): string[] {
  for (const name of names) trackKey(sysvKeyOf(name));
  return names;
}

/** The reply channels of a service that exist, of either backend (list() finds System V ones by key). */
function replyChannels(backend: Backend, service: string): string[] {
  return trackReplyChannels(list().filter((c) => c.backend === backend && c.name.startsWith(`${service}.reply.`)).map((c) => c.name));
}

/** The client number a reply channel's name ends with: what the client's requests carry. */
function clientNumber(replyChannel: string, service: string): number {
  const suffix = replyChannel.slice(`${service}.reply.`.length);
  expect(suffix).toMatch(/^\d+$/);
  return Number(suffix);
}

/** The reply channel names a service-client.mjs fixture printed on its "connected" line. */
async function connectedChannels(client: Fixture): Promise<string[]> {
  const line = await client.line('connected');
  return trackReplyChannels(JSON.parse(line.slice('connected '.length)));
}

/** Stops the workers all at once, in no order: the queue stays until the last one lets go. */
async function stopWorkers(creator: Fixture, openers: Fixture[]): Promise<{ most: number; handled: number }[]> {
  return Promise.all([creator, ...openers].map(stopWorker));
}

/** The error a call throws (the test fails if it throws none). */
function thrownBy(call: () => unknown): ShmChanError {
  try {
    call();
  } catch (error) {
    return error as ShmChanError;
  }
  throw new Error('expected an error');
}

/** A worker's last line: { most, handled }, once SIGTERM has ended its serve(). */
async function stopWorker(worker: Fixture): Promise<{ most: number; handled: number }> {
  worker.child.kill('SIGTERM');
  const { code } = await worker.exited;
  expect({ code, stderr: worker.stderr() }).toEqual({ code: 0, stderr: '' });
  const lines = worker.stdout().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** The `aborted { wait, code }` lines a service-worker.mjs printed so far. */
const abortedLines = (worker: Fixture) =>
  worker
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('aborted '))
    .map((line) => JSON.parse(line.slice('aborted '.length)) as { wait: number; code: string });

/** A new service and its one worker (service-worker.mjs create CONCURRENCY), serving. */
async function oneWorker(b: ReturnType<typeof using>, label: string, concurrency: number): Promise<{ name: string; worker: Fixture }> {
  const name = uniqueName(label);
  const worker = b.startFixture('service-worker.mjs', [name, 'create', String(concurrency)]);
  await worker.line('serving');
  return { name, worker };
}

/** Waits until `count` handlers have seen their signal abort; their lines, in `wait` order. */
async function abortedHandlers(worker: Fixture, count: number): Promise<{ wait: number; code: string }[]> {
  await until(() => abortedLines(worker).length === count, `${count} handlers see their signal aborted`);
  return abortedLines(worker).sort((x, y) => x.wait - y.wait);
}

/** Waits until the service's workers have taken `count` requests from its queue. */
async function requestsTaken(b: ReturnType<typeof using>, name: string, count: number): Promise<void> {
  await until(() => requestsReceived(b, name) === count, `the workers take ${count} requests`);
}

/** The requests the service's queue counts as received, read through a handle of our own. */
function requestsReceived(b: ReturnType<typeof using>, name: string): number {
  const queue = b.open(name);
  try {
    return queue.stats().messagesReceived;
  } finally {
    queue.close();
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  it('many requests in flight from two client processes: each reply is its own request', async () => {
    const name = uniqueName('svc-many');
    const worker = b.startFixture('service-worker.mjs', [name, 'create']);
    await worker.line('serving');
    const results = await Promise.all([b.runFixture('service-client.mjs', [name, '3000', '64']), b.runFixture('service-client.mjs', [name, '3000', '64'])]);
    for (const result of results) expect(result).toMatchObject({ replies: 3000, wrong: [], errors: {} });
    expect(await stopWorker(worker)).toMatchObject({ handled: 6000, most: 1 });
  });

  it('several workers take distinct requests, each within its concurrency bound', async () => {
    const name = uniqueName('svc-workers');
    const first = b.startFixture('service-worker.mjs', [name, 'create', '4', '5']);
    await first.line('serving');
    const others = [0, 1].map(() => b.startFixture('service-worker.mjs', [name, 'open', '4', '5']));
    await Promise.all(others.map((w) => w.line('serving')));
    const result = await b.runFixture('service-client.mjs', [name, '600', '48']);
    expect(result).toMatchObject({ replies: 600, wrong: [], errors: {} });
    const summaries = await stopWorkers(first, others);
    // each request handled by exactly one worker, and each worker's replies came from it
    expect(summaries.reduce((sum, s) => sum + s.handled, 0)).toBe(600);
    expect(Object.values(result.workers).reduce((sum: number, n) => sum + (n as number), 0)).toBe(600);
    expect(Object.keys(result.workers).length).toBeGreaterThan(1);
    for (const s of summaries) {
      expect(s.most).toBeLessThanOrEqual(4);
      if (s.handled > 20) expect(s.most).toBeGreaterThan(1);
    }
  });

  it("a handler's error is ERR_REMOTE with the remote name, message and code; bad messages never stop the worker", async () => {
    const name = uniqueName('svc-remote');
    const worker = b.startFixture('service-worker.mjs', [name, 'create']);
    await worker.line('serving');
    const client = await Client.connect(name, { backend, timeout: 5000 });
    // hostile or broken messages straight into the queue, and a "reply channel" that is not one
    const [missing, decoyNumber] = [1, 2].map((n) => (clientNumber(replyChannels(backend, name)[0], name) + n) % 2 ** 32);
    const decoy = b.create(trackReplyChannels([`${name}.reply.${decoyNumber}`])[0], { mode: 'mpmc' });
    const queue = b.open(name);
    try {
      const notRequests = ['hello', 42, [[1], 2, 3], ['elsewhere', 1, 2], [`${name}.reply.${missing}`, 1, 2], [-1, 1, 2], [2 ** 32, 1, 2], [1.5, 1, 2], [missing, -1]];
      for (const junk of [...notRequests, [missing, 7, 1], [decoyNumber, 8, 1]]) queue.trySend(junk);
      const error = await client.request({ fail: 'no way' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ShmChanError);
      expect(error).toMatchObject({ code: 'ERR_REMOTE', message: 'no way', remote: { name: 'TypeError', message: 'no way', code: 'E_ASKED' } });
      expect(await client.request('still here')).toMatchObject({ value: 'still here' });
      expect(decoy.stats().messagesSent).toBe(0);
      expect(worker.stderr()).toBe('');
    } finally {
      queue.close();
      decoy.close();
      client.close();
    }
    // 'still here', and the two well-formed requests whose reply channel is missing or no reply channel
    expect((await stopWorker(worker)).handled).toBe(3);
  });

  it('requests wait while a worker exists but does not serve; the iterator answers them; a closed last worker is ERR_PEER_GONE', async () => {
    const name = uniqueName('svc-idle');
    const service = Service.create<string, string>(name, { backend });
    const client = await Client.connect<string, string>(name, { backend, timeout: 5000 });
    try {
      // a live worker that is not serving: the request waits in the queue until its timeout
      expect(await client.request('early', { timeout: 700 }).catch((e: ShmChanError) => e.code)).toBe('ERR_TIMEOUT');
      const waiting = client.request('later');
      const refused = client.request('refused');
      const iterator = service[Symbol.asyncIterator]();
      const answered: string[] = [];
      for (;;) {
        const { value: request } = await iterator.next();
        answered.push(request!.value);
        // a request handed out is released from the queue, before any reply: 'early' (skipped) and 'later'
        if (request!.value === 'later') expect(requestsReceived(b, name)).toBe(2);
        if (request!.value === 'refused') {
          request!.fail(new RangeError('too late'));
          break;
        }
        request!.reply(`got ${request!.value}`);
        expect(() => request!.reply('twice')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
      }
      // 'early' passed its deadline in the queue: the worker skipped it
      expect(answered).toEqual(['later', 'refused']);
      expect(await waiting).toBe('got later');
      expect(await refused.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_REMOTE', remote: { name: 'RangeError', message: 'too late' } });
      const pending = client.request('after close');
      service.close();
      expect(await pending.catch((e: ShmChanError) => e.code)).toBe('ERR_PEER_GONE');
      expect(await client.request('new').catch((e: ShmChanError) => e.code)).toBe('ERR_PEER_GONE');
    } finally {
      client.close();
      service.close();
    }
  });

  it('a timeout or an abort rejects locally and the late reply is dropped', async () => {
    const name = uniqueName('svc-late');
    const worker = b.startFixture('service-worker.mjs', [name, 'create', '4', '300']);
    await worker.line('serving');
    const client = await Client.connect(name, { backend, timeout: 5000 });
    try {
      const timedOut = await client.request('first', { timeout: 30 }).catch((e: unknown) => e);
      expect(timedOut).toMatchObject({ code: 'ERR_TIMEOUT' });
      const controller = new AbortController();
      const aborted = client.request('second', { signal: controller.signal });
      controller.abort();
      expect(await aborted.catch((e: unknown) => e)).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      // the late reply to 'second' arrives while 'third' waits (the worker drops 'first''s: its client
      // gave up at the deadline): only its own reply settles 'third'
      expect(await client.request('third')).toMatchObject({ value: 'third' });
    } finally {
      client.close();
    }
    // 'second' and 'third' at least: 'first' is skipped if its deadline passed before the worker took it
    expect([2, 3]).toContain((await stopWorker(worker)).handled);
  });

  it('SIGKILL of a worker with requests in flight: the others answer the rest; when none is left, ERR_PEER_GONE', async () => {
    const name = uniqueName('svc-kill-worker');
    const doomed = b.startFixture('service-worker.mjs', [name, 'create', '4', '40']);
    await doomed.line('serving');
    const survivor = b.startFixture('service-worker.mjs', [name, 'open', '4', '40']);
    await survivor.line('serving');
    const client = await Client.connect<{ i: number }, { value: { i: number } }>(name, { backend, timeout: 5000 });
    try {
      const outcomes = Array.from({ length: 80 }, (_, i) =>
        client.request({ i }, { timeout: 4000 }).then(
          (reply) => (reply.value.i === i ? 'ok' : 'wrong'),
          (error: ShmChanError) => error.code,
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 60));
      doomed.child.kill('SIGKILL');
      const settled = await Promise.all(outcomes);
      const count = (what: string) => settled.filter((s) => s === what).length;
      // a request the dead worker had taken is lost with it (its handler may have run): it times out
      expect(count('wrong')).toBe(0);
      expect(count('ok') + count('ERR_TIMEOUT')).toBe(80);
      expect(count('ERR_TIMEOUT')).toBeLessThanOrEqual(4);
      expect(count('ok')).toBeGreaterThanOrEqual(76);

      // the last worker dies with requests waiting: they fail, and so do new ones
      const waiting = Array.from({ length: 20 }, (_, i) => client.request({ i }).catch((e: ShmChanError) => e.code));
      await new Promise((resolve) => setTimeout(resolve, 20));
      survivor.child.kill('SIGKILL');
      const gone = await Promise.all(waiting);
      for (const outcome of gone) if (typeof outcome === 'string') expect(outcome).toBe('ERR_PEER_GONE');
      expect(gone.filter((s) => s === 'ERR_PEER_GONE').length).toBeGreaterThan(0);
      expect(await client.request({ i: -1 }).catch((e: ShmChanError) => e.code)).toBe('ERR_PEER_GONE');
    } finally {
      client.close();
    }
  });

  it('SIGKILL of a client with requests in flight: the worker goes on, and its reply channel is removed', async () => {
    const name = uniqueName('svc-kill-client');
    const worker = b.startFixture('service-worker.mjs', [name, 'create', '4', '100']);
    await worker.line('serving');
    const doomed = b.startFixture('service-client.mjs', [name, 'hang', '20']);
    const [left] = await connectedChannels(doomed);
    await doomed.line('sent');
    expect(replyChannels(backend, name)).toEqual([left]);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const result = await b.runFixture('service-client.mjs', [name, '50', '8']);
    expect(result).toMatchObject({ replies: 50, wrong: [], errors: {} });
    trackReplyChannels(result.replyChannels);
    // its segment (and, for System V, its semaphore set) goes
    await until(() => !b.exists(left), "the dead client's reply channel is removed");
    expect(worker.stderr()).toBe('');
    await stopWorker(worker);
  });

  it("the handler's signal aborts when the client's timeout passes: the late reply is dropped, the worker goes on", async () => {
    const { name, worker } = await oneWorker(b, 'svc-deadline', 4);
    const client = b.startFixture('service-client.mjs', [name, 'wait', '3', '1', '300']);
    await connectedChannels(client);
    expect(JSON.parse(await client.line('"outcomes"'))).toEqual({ outcomes: ['ERR_TIMEOUT', 'ERR_TIMEOUT', 'ERR_TIMEOUT'] });
    // aborted by the deadline: the client is still alive
    expect(await abortedHandlers(worker, 3)).toEqual([0, 1, 2].map((wait) => ({ wait, code: 'ERR_TIMEOUT' })));
    expect(await b.runFixture('service-client.mjs', [name, '20', '4'])).toMatchObject({ replies: 20, wrong: [], errors: {} });
    expect(worker.stderr()).toBe('');
    expect((await stopWorker(worker)).handled).toBe(20);
  });

  it("the handler's signal aborts when its client is SIGKILLed: the reply is dropped, the worker goes on", async () => {
    const { name, worker } = await oneWorker(b, 'svc-client-gone', 4);
    const doomed = b.startFixture('service-client.mjs', [name, 'wait', '3']);
    const [left] = await connectedChannels(doomed);
    await doomed.line('sent');
    await requestsTaken(b, name, 3);
    expect(abortedLines(worker)).toEqual([]);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    expect(await abortedHandlers(worker, 3)).toEqual([0, 1, 2].map((wait) => ({ wait, code: 'ERR_PEER_GONE' })));
    expect(await b.runFixture('service-client.mjs', [name, '20', '4'])).toMatchObject({ replies: 20, wrong: [], errors: {} });
    await until(() => !b.exists(left), "the dead client's reply channel is removed");
    expect(worker.stderr()).toBe('');
    expect((await stopWorker(worker)).handled).toBe(20);
  });

  it("the handler's signal aborts when its client closes", async () => {
    const { name, worker } = await oneWorker(b, 'svc-client-closed', 2);
    const client = await Client.connect(name, { backend, timeout: 5000 });
    trackReplyChannels(replyChannels(backend, name));
    const pending = [0, 1].map((wait) => client.request({ wait }).catch((e: ShmChanError) => e.code));
    await requestsTaken(b, name, 2);
    client.close();
    expect(await Promise.all(pending)).toEqual(['ERR_CLOSED', 'ERR_CLOSED']);
    expect(await abortedHandlers(worker, 2)).toEqual([0, 1].map((wait) => ({ wait, code: 'ERR_PEER_GONE' })));
    expect(worker.stderr()).toBe('');
    await stopWorker(worker);
  });

  it('a deadline further off than a timer can wait is no deadline: only the client closing aborts the handler', async () => {
    const { name, worker } = await oneWorker(b, 'svc-far-deadline', 2);
    const client = await Client.connect(name, { backend, timeout: 5000 });
    const number = clientNumber(replyChannels(backend, name)[0], name);
    const queue = b.open(name);
    try {
      // as a C client could write it: a deadline 2^53 - 1 ms from the clock's origin
      expect(queue.trySend([number, 7_000, { wait: 7 }, Number.MAX_SAFE_INTEGER])).toBe(true);
      await requestsTaken(b, name, 1);
      expect(await client.request('meanwhile')).toMatchObject({ value: 'meanwhile' });
    } finally {
      queue.close();
      client.close();
    }
    expect(await abortedHandlers(worker, 1)).toEqual([{ wait: 7, code: 'ERR_PEER_GONE' }]);
    expect(worker.stderr()).toBe('');
    await stopWorker(worker);
  });

  it('a handler that reads its signal only after serving stopped finds it aborted, with the reason', async () => {
    const name = uniqueName('svc-late-read');
    const service = Service.create(name, { backend });
    const stop = new AbortController();
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen: AbortSignal | undefined;
    const served = service.serve(
      async (_value, context) => {
        entered();
        await gate;
        seen = context.signal;
      },
      { signal: stop.signal },
    );
    try {
      await connectedChannels(b.startFixture('service-client.mjs', [name, 'hang', '1']));
      await inHandler;
      stop.abort(new RangeError('stopping'));
      release();
      await served;
      expect(seen).toMatchObject({ aborted: true, reason: { name: 'RangeError', message: 'stopping' } });
    } finally {
      service.close();
    }
  });

  it('64 clients at once (8 processes of 8), 2 workers', async () => {
    const name = uniqueName('svc-64');
    const workers = [b.startFixture('service-worker.mjs', [name, 'create', '8'])];
    await workers[0].line('serving');
    workers.push(b.startFixture('service-worker.mjs', [name, 'open', '8']));
    await workers[1].line('serving');
    const clients = Array.from({ length: 8 }, () => b.startFixture('service-client.mjs', [name, '100', '4', '8']));
    const channels = (await Promise.all(clients.map(connectedChannels))).flat(); // all 64 connected at once
    expect(new Set(channels).size).toBe(64);
    for (const client of clients) {
      expect((await client.exited).code).toBe(0);
      const lines = client.stdout().trim().split('\n');
      expect(JSON.parse(lines[lines.length - 1])).toMatchObject({ replies: 800, wrong: [], errors: {} });
    }
    const handled = (await stopWorkers(workers[0], workers.slice(1))).reduce((sum, s) => sum + s.handled, 0);
    expect(handled).toBe(6400);
    // each client removed its own reply channel on close
    expect(channels.filter((channel) => b.exists(channel))).toEqual([]);
    expect(replyChannels(backend, name)).toEqual([]);
  });

  it('a client number that another client holds is passed over: the new client takes another', async () => {
    const name = uniqueName('svc-number');
    const service = Service.create<string, string>(name, { backend });
    const serving = service.serve((value) => `re ${value}`);
    // Math.random picks the client number: its first pick is 2^31, whose reply channel exists and is in use
    const taken = b.create(trackReplyChannels([`${name}.reply.${2 ** 31}`])[0], { mode: 'mpsc' });
    taken.tryReceive();
    const random = vi.spyOn(Math, 'random').mockReturnValueOnce(0.5);
    try {
      const client = await Client.connect<string, string>(name, { backend, timeout: 5000 });
      try {
        expect(random).toHaveBeenCalledTimes(2);
        expect(await client.request('x')).toBe('re x');
        expect(taken.stats().messagesSent).toBe(0);
        expect(replyChannels(backend, name).filter((channel) => channel !== taken.name)).toHaveLength(1);
      } finally {
        client.close();
      }
    } finally {
      random.mockRestore();
      taken.close();
      service.close();
      await serving;
    }
  });

  it('a worker SIGKILLed and started again with Service.create takes over the queue: the client that stayed gets its replies', async () => {
    const name = uniqueName('svc-restart');
    const first = b.startFixture('service-worker.mjs', [name, 'create']);
    await first.line('serving');
    const client = await Client.connect(name, { backend, timeout: 5000 });
    try {
      expect(await client.request('before')).toMatchObject({ value: 'before', worker: first.child.pid });
      first.child.kill('SIGKILL');
      await first.exited;
      expect(await client.request('meanwhile', { timeout: 5000 }).catch((e: ShmChanError) => e.code)).toBe('ERR_PEER_GONE');
      // the queue is still in use (by the client) and has no worker: a new worker's create takes it over
      const second = b.startFixture('service-worker.mjs', [name, 'create']);
      await second.line('serving');
      // the client looks for workers again at most every 300 ms: until then a request rejects at once
      let reply: unknown;
      for (const giveUp = Date.now() + 10_000; reply === undefined; ) {
        try {
          reply = await client.request('after', { timeout: 5000 });
        } catch (error) {
          if ((error as ShmChanError).code !== 'ERR_PEER_GONE' || Date.now() > giveUp) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      expect(reply).toMatchObject({ value: 'after', worker: second.child.pid });
      // 'meanwhile' too: it stayed in the queue within its deadline (the client had given up on it)
      expect(await stopWorker(second)).toMatchObject({ handled: 2 });
      expect(b.exists(name)).toBe(true); // the client still has it open
    } finally {
      client.close();
    }
    expect(b.exists(name)).toBe(false); // the last to close removed it
  });

  it('the creating worker may stop first: the worker that opened the service answers, new clients connect, the last to close removes the queue', async () => {
    const name = uniqueName('svc-creator-first');
    const creator = b.startFixture('service-worker.mjs', [name, 'create']);
    await creator.line('serving');
    const opener = b.startFixture('service-worker.mjs', [name, 'open']);
    await opener.line('serving');
    await stopWorker(creator);
    const client = await Client.connect(name, { backend, timeout: 5000 });
    try {
      for (let i = 0; i < 10; i++) expect(await client.request(i)).toMatchObject({ value: i, worker: opener.child.pid });
    } finally {
      client.close();
    }
    expect(b.exists(name)).toBe(true); // the opener still has it open
    expect(await stopWorker(opener)).toMatchObject({ handled: 10 });
    expect(b.exists(name)).toBe(false);
  });

  it('Service.create on a service that has a live worker, or on a channel that is no service queue, fails with ERR_CHANNEL_EXISTS', async () => {
    const name = uniqueName('svc-taken');
    const service = Service.create(name, { backend });
    // in use by this process, with no consumer: only a service's queue would be taken over
    const others = [b.create(uniqueName('svc-mpsc'), { mode: 'mpsc' }), b.create(uniqueName('svc-raw-mpmc'), { mode: 'mpmc', codec: 'raw' })];
    try {
      expect(thrownBy(() => Service.create(name, { backend }))).toMatchObject({ code: 'ERR_CHANNEL_EXISTS', message: expect.stringContaining(`Service.open('${name}')`) });
      for (const other of others) {
        expect(thrownBy(() => Service.create(other.name, { backend }))).toMatchObject({ code: 'ERR_CHANNEL_EXISTS' });
        expect(other.stats().consumers).toBe(0);
      }
    } finally {
      for (const other of others) other.close();
      service.close();
    }
    expect(b.exists(name)).toBe(false);
  });

  it('a client keeps its process alive while requests are in flight, and only then', async () => {
    const name = uniqueName('svc-alive');
    const worker = b.startFixture('service-worker.mjs', [name, 'create', '4', '300']);
    await worker.line('serving');
    for (const then of ['nothing', 'request']) {
      // the client never closes: it must end on its own, after its replies
      const client = b.startFixture('service-idle-client.mjs', [name, then]);
      const hung = setTimeout(() => client.child.kill('SIGKILL'), 15_000);
      const { code, signal } = await client.exited;
      clearTimeout(hung);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      // 'b' is sent while the client sleeps, unrefed, for the reply that timed out: the
      // sleep must keep the process alive again until the reply to 'b' (300 ms later)
      expect(client.stdout()).toBe(then === 'request' ? 'timed out ERR_TIMEOUT\nreplied "b"\n' : 'timed out ERR_TIMEOUT\n');
    }
    await stopWorker(worker);
  });

  it('shmchan call prints the reply as JSON; a remote error or a timeout exits 1, bad usage 2', async () => {
    const name = uniqueName('svc-call');
    const worker = b.startFixture('service-worker.mjs', [name, 'create', '1', '200']);
    await worker.line('serving');
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [path.join(packageRoot, 'bin', 'shmchan.js'), 'call', ...(backend === 'sysv' ? ['--sysv'] : []), ...args]);
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const ok = await cli(name, '{"a":[1,"two",null]}');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ value: { a: [1, 'two', null] } });
    expect(await cli(name, '{"fail":"refused"}')).toMatchObject({ code: 1, stdout: '', stderr: 'shmchan call: refused\n' });
    const late = await cli(name, '1', '--timeout', '50');
    expect(late).toMatchObject({ code: 1, stdout: '' });
    expect(late.stderr).toMatch(/no reply within 50 ms/);
    expect((await cli(name, '{oops')).code).toBe(2);
    expect((await cli(name)).code).toBe(2);
    expect((await cli(name, '1', '--timeout', 'soon')).code).toBe(2);
    await stopWorker(worker);
  });
});

it("a busy client and worker leave nothing for the old generation: their requests' objects die young", async () => {
  // A Map or Set that gains and loses an entry per request links each hash table
  // V8 outgrows to the next; once one is old, every young collection promoted the
  // next with all its entries, and the collector took much of both processes'
  // time (src/core/id-table.ts). Measured after two full collections, which move the
  // live tables to the old generation: 100,000 requests, 64 in flight.
  const name = uniqueName('svc-heap');
  const env = { NODE_OPTIONS: '--expose-gc' };
  const worker = startFixture('service-heap.mjs', [name, 'worker'], { env });
  await worker.line('serving');
  const client = startFixture('service-heap.mjs', [name, 'client'], { env });
  const [clientSide, workerSide] = await Promise.all([client.line('"role":"client"'), worker.line('"role":"worker"')]);
  for (const side of [clientSide, workerSide]) {
    const { role, majors, oldGrowthMB } = JSON.parse(side) as { role: string; majors: number; oldGrowthMB: number };
    expect(majors, `${role}: major collections while its requests ran`).toBeLessThanOrEqual(1);
    expect(oldGrowthMB, `${role}: growth of the old generation, MB`).toBeLessThan(2);
  }
  expect((await client.exited).code).toBe(0);
  expect((await worker.exited).code).toBe(0);
});

it("a System V sweep for stale reply channels does not attach segments in use (another program's, or a live channel)", async () => {
  const b = using('sysv');
  const live = b.create(uniqueName('in-use')); // attached by this process, so never stale
  try {
    const key = sysvKeyOf(live.name);
    // atime: the last shmat, in seconds; lpid: the process of the last shmat or shmdt
    const attached = () => {
      const { fields } = sysvRows('shm').find((row) => row.key === key)!;
      return { atime: fields[11], lpid: Number(fields[5]) };
    };
    const before = attached();
    expect(before.lpid).toBe(process.pid); // this process attached it last, when it created it
    await new Promise((resolve) => setTimeout(resolve, 1100)); // atime counts seconds: a later shmat would show
    removeStaleReplyChannels(uniqueName('svc'), 'sysv');
    const after = attached();
    // A test in another process may list every channel meanwhile (shmchan ls), which
    // attaches this one too: then the last attach is that process's, not this one's.
    if (after.atime !== before.atime) expect(after.lpid, 'this process attached a segment in use').not.toBe(process.pid);
  } finally {
    live.close();
  }
});
