// One process of a request/reply trial (see services.ts): the server
//   node dist/bench/service-trial.js server MECHANISM ADDRESS
// prints "ready" once it answers; the client
//   node dist/bench/service-trial.js client MECHANISM ADDRESS PHASE SPEC_JSON
// (PHASE: roundTrip or throughput) prints one line of JSON with what it
// measured. Every mechanism echoes the request's value back as the reply.
import http from 'node:http';
import net from 'node:net';
import { Channel, Client, Service } from '../index';
import { letMicrotasksRun } from '../service-wire';
import { FrameReader, packFrame, packr, unpackr } from './drivers';
import { roundTrips, throughput, type RequestClient, type ServicePhase, type ServiceTrialSpec } from './services';
import { reportResult, runTrialProcess, sayReady } from './trial-process';

const [role, mechanism, address, phase, specJson] = process.argv.slice(2);

/** Length-prefixed msgpack frames on a stream socket: calls onFrame with each decoded frame. */
function frames(socket: net.Socket, onFrame: (frame: unknown) => void): void {
  const reader = new FrameReader((bytes) => onFrame(unpackr.unpack(bytes)));
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
}

/** The by-hand server: requests [id, value] on an 'mpmc' queue, each echoed on the
 * client's 'mpsc' reply channel (its name is the queue's plus '.reply'). */
async function serveByHand(): Promise<void> {
  const queue = Channel.create<[number, unknown]>(address, { mode: 'mpmc' });
  let replies: Channel<[number, unknown]> | undefined;
  process.on('SIGTERM', () => {
    queue.close();
    replies?.close();
    process.exit(0);
  });
  sayReady();
  for (;;) {
    const request = queue.tryReceive() ?? (await queue.receive());
    replies ??= Channel.open(`${address}.reply`);
    if (!replies.trySend(request)) await replies.send(request);
  }
}

async function serve(): Promise<void> {
  if (mechanism === 'channels') return serveByHand();
  if (mechanism === 'shmchan') {
    const service = Service.create(address);
    process.on('SIGTERM', () => {
      service.close();
      process.exit(0);
    });
    sayReady();
    await service.serve((value) => value);
    return;
  }
  const server =
    mechanism === 'unix'
      ? net.createServer((socket) => frames(socket, (request) => socket.write(packFrame(request))))
      : http.createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
          const chunks: Buffer[] = [];
          request.on('data', (chunk: Buffer) => chunks.push(chunk));
          request.on('end', () => {
            const body = packr.pack(unpackr.unpack(Buffer.concat(chunks)));
            response.writeHead(200, { 'content-type': 'application/msgpack', 'content-length': body.length });
            response.end(body);
          });
        });
  server.listen(address, sayReady);
  process.on('SIGTERM', () => process.exit(0));
}

/** A client for each mechanism: request(value) resolves with the echoed value. */
async function connect(): Promise<RequestClient> {
  if (mechanism === 'shmchan') {
    const client = await Client.connect(address, { timeout: 10_000 });
    return { request: (value) => client.request(value), close: () => client.close() };
  }
  if (mechanism === 'channels') return connectByHand();
  if (mechanism === 'unix') {
    const socket = net.connect(address);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.setNoDelay(true);
    const inFlight = new InFlight();
    frames(socket, (reply) => inFlight.settle(reply as [number, unknown]));
    return {
      request: (value) => inFlight.add((id) => socket.write(packFrame([id, value]))),
      close: () => socket.destroy(),
    };
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    request: (value) =>
      new Promise((resolve, reject) => {
        const body = packr.pack(value);
        const request = http.request(
          { socketPath: address, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/msgpack', 'content-length': body.length } },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('end', () => resolve(unpackr.unpack(Buffer.concat(chunks))));
          },
        );
        request.on('error', reject);
        request.end(body);
      }),
    close: () => agent.destroy(),
  };
}

/** Requests in flight, matched to their replies by id in a Map, as hand-written
 * request/reply code keeps them (the unix socket's client and the by-hand one). */
class InFlight {
  private readonly pending = new Map<number, (value: unknown) => void>();
  private nextId = 0;

  get size(): number {
    return this.pending.size;
  }

  /** A new request: `send` sends it under its id; the promise settles with its reply. */
  add(send: (id: number) => void): Promise<unknown> {
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.pending.set(id, resolve);
      send(id);
    });
  }

  settle([id, value]: [number, unknown]): void {
    this.pending.get(id)?.(value);
    this.pending.delete(id);
  }
}

/** The by-hand client: its reply channel, and the requests in flight matched by id. */
async function connectByHand(): Promise<RequestClient> {
  const queue = await Channel.connect<[number, unknown]>(address, { timeout: 10_000 });
  const replies = Channel.create<[number, unknown]>(`${address}.reply`, { mode: 'mpsc' });
  const inFlight = new InFlight();
  let receiving = false;
  const receiveReplies = async () => {
    while (inFlight.size > 0) {
      let reply = replies.tryReceive();
      if (reply === undefined) {
        await letMicrotasksRun(); // the continuations that send the next requests
        if (inFlight.size === 0) break;
        reply = await replies.receive();
      }
      inFlight.settle(reply);
    }
    receiving = false;
  };
  return {
    request: (value) =>
      inFlight.add((id) => {
        if (!queue.trySend([id, value])) throw new Error('the by-hand queue is full');
        if (!receiving) {
          receiving = true;
          queueMicrotask(() => void receiveReplies());
        }
      }),
    close: () => {
      queue.close();
      replies.close();
    },
  };
}

async function measure(): Promise<void> {
  const client = await connect();
  const spec = JSON.parse(specJson) as ServiceTrialSpec;
  const result = (phase as ServicePhase) === 'throughput' ? await throughput(client, spec) : await roundTrips(client, spec);
  client.close();
  reportResult(result);
}

runTrialProcess(`service trial (${mechanism})`, role === 'server' ? serve : measure);
