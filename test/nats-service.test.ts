// A local service answering requests from another host through NATS: the service's
// workers and the serving bridge are real processes on "host B", the caller is this
// process on "host A", talking plain NATS request/reply with MessagePack payloads.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, uniqueName, type Fixture } from './helpers';
import { natsServerFor, useNatsServer } from './nats-server';

const binary = natsServerFor('the NATS service bridge tests');

describe.skipIf(binary === undefined)('a service reachable from another host through NATS', () => {
  const server = useNatsServer(binary!);
  let nc: NatsConnection;
  let subjects = 0;

  beforeAll(async () => {
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
  });

  /** Host B: a service with `workers` worker processes and a serving bridge. */
  async function hostB(label: string, workers: number, extra: string[] = []): Promise<{ name: string; subject: string; workers: Fixture[]; bridge: Fixture }> {
    const name = uniqueName(label);
    const subject = `shmchan.service.${process.pid}.${label}.${subjects++}`;
    const first = startFixture('service-worker.mjs', [name, 'create', '4']);
    await first.line('serving');
    const others = Array.from({ length: workers - 1 }, () => startFixture('service-worker.mjs', [name, 'open', '4']));
    await Promise.all(others.map((w) => w.line('serving')));
    const bridge = startFixture('nats-serve.mjs', [name, server.url, subject, ...extra]);
    await bridge.line('serving');
    return { name, subject, workers: [first, ...others], bridge };
  }

  async function stopped(fixture: Fixture): Promise<any> {
    fixture.child.kill('SIGTERM');
    const { code, signal } = await fixture.exited;
    if (code !== 0) throw new Error(`exited with ${code ?? signal}\nstdout: ${fixture.stdout()}\nstderr: ${fixture.stderr()}`);
    const lines = fixture.stdout().trim().split('\n');
    return JSON.parse(lines[lines.length - 1]);
  }

  it('answers 300 concurrent requests, each with its own reply, every byte intact, spread over the workers', async () => {
    const b = await hostB('svc-nats', 2);
    const values = Array.from({ length: 300 }, (_, i) => ({ i, bytes: Buffer.alloc(i % 200, i & 0xff), text: `request ${i}` }));
    const replies = await Promise.all(values.map((value) => nc.request(b.subject, pack(value), { timeout: 30_000 })));
    const workers = new Set<number>();
    replies.forEach((reply, i) => {
      expect(reply.headers?.get('Shmchan-Error') ?? '').toBe('');
      const answer = unpack(reply.data);
      expect(answer.value).toEqual(values[i]);
      expect(Buffer.compare(answer.value.bytes, values[i].bytes)).toBe(0);
      workers.add(answer.worker);
    });
    expect([...workers].sort()).toEqual(b.workers.map((w) => w.child.pid).sort());
    expect(await stopped(b.bridge)).toMatchObject({ requests: 300, replies: 300, failures: 0 });
  });

  it("carries the handler's error back as a failure { name, message, code }, and an undefined value both ways", async () => {
    const b = await hostB('svc-nats-fail', 1);
    const failed = await nc.request(b.subject, pack({ fail: 'no such size' }), { timeout: 30_000 });
    expect(failed.headers?.get('Shmchan-Error')).toBe('1');
    expect(unpack(failed.data)).toEqual({ name: 'TypeError', message: 'no such size', code: 'E_ASKED' });
    const empty = await nc.request(b.subject, new Uint8Array(0), { timeout: 30_000 });
    expect(unpack(empty.data)).toMatchObject({ value: undefined });
    const garbage = await nc.request(b.subject, Uint8Array.of(0x92, 0x01), { timeout: 30_000 }); // an array of 2 that ends after 1
    expect(garbage.headers?.get('Shmchan-Error')).toBe('1');
    expect(await stopped(b.bridge)).toMatchObject({ requests: 3, replies: 1, failures: 2 });
  });

  it('answers ERR_PEER_GONE once every worker of the service is dead (SIGKILL)', async () => {
    const b = await hostB('svc-nats-gone', 1);
    b.workers[0].child.kill('SIGKILL');
    await b.workers[0].exited;
    const reply = await nc.request(b.subject, pack({ late: true }), { timeout: 30_000 });
    expect(reply.headers?.get('Shmchan-Error')).toBe('1');
    expect(unpack(reply.data)).toMatchObject({ code: 'ERR_PEER_GONE' });
  });

  it('several bridges on one subject answer each request once (a queue group)', async () => {
    const b = await hostB('svc-nats-group', 1);
    const second = startFixture('nats-serve.mjs', [b.name, server.url, b.subject]);
    await second.line('serving');
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => nc.request(b.subject, pack(i), { timeout: 30_000 })));
    expect(replies.map((r) => unpack(r.data).value)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const counts = [await stopped(b.bridge), await stopped(second)].map((s) => s.requests);
    expect(counts[0] + counts[1]).toBe(100);
  });

});
