// One process of a fan-out or work-queue trial (see patterns.ts):
//   node dist/bench/pattern-trial.js ROLE SPEC_JSON
// prints "ready" once it is connected (a subscriber or consumer has subscribed),
// then waits for one line "FROM TO" on stdin: the measured window, in ms since
// the epoch, the same for every process of the trial. Producers send from the
// go until TO (the time before FROM is the warm-up); everyone counts what falls
// in the window and prints one line of JSON with it when the stream ends.
import net from 'node:net';
import { Channel, type ShmChanError } from '../index';
import { FrameReader, frameOf, messageKinds, packFrame, unpackr } from './drivers';
import type { PatternSpec } from './patterns';
import { reportResult, runTrialProcess, sayReady } from './trial-process';

const [role, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson) as PatternSpec;
const nowMs = () => performance.timeOrigin + performance.now();
const make = messageKinds.small.make;

/** What the process counted inside the window [from, to). */
class Window {
  from = Infinity;
  to = Infinity;
  messages = 0;
  cpuStart: NodeJS.CpuUsage | undefined;
  cpuMicros = 0;
  systemMicros = 0;

  /** Counts one message at this moment; false once the window is over. */
  count(): boolean {
    const t = nowMs();
    if (t < this.from) return true;
    if (t >= this.to) {
      if (this.cpuStart !== undefined && this.cpuMicros === 0) {
        const used = process.cpuUsage(this.cpuStart);
        this.cpuMicros = used.user + used.system;
        this.systemMicros = used.system;
      }
      return false;
    }
    if (this.messages === 0) this.cpuStart = process.cpuUsage();
    this.messages++;
    return true;
  }

  /** Rates are over the whole window, the same for every process of the trial. */
  result(extra: Record<string, number> = {}): Record<string, number> {
    return {
      messages: this.messages,
      msgsPerSec: this.messages / ((this.to - this.from) / 1000),
      cpuNsPerMessage: this.messages > 0 ? (this.cpuMicros * 1000) / this.messages : 0,
      systemNsPerMessage: this.messages > 0 ? (this.systemMicros * 1000) / this.messages : 0,
      ...extra,
    };
  }
}

const window = new Window();

/** Resolves at the go line from the runner, with the window set. */
function go(): Promise<void> {
  return new Promise((resolve) => {
    let text = '';
    process.stdin.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('\n')) return;
      [window.from, window.to] = text.trim().split(' ').map(Number);
      process.stdin.pause();
      resolve();
    });
  });
}

const finish = (extra?: Record<string, number>) => reportResult(window.result(extra));

async function connect(address: string): Promise<net.Socket> {
  const socket = net.connect(address);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** A shmchan receiver (subscriber or consumer): every message until the stream ends. */
async function shmchanReceiver(): Promise<void> {
  const channel = Channel.open(spec.address, spec.mechanism.startsWith('broadcast') ? { from: 'latest' } : {});
  channel.tryReceive(); // subscribes (claims a consumer slot) before the producers start
  sayReady();
  await go();
  let lost = 0;
  for (;;) {
    try {
      channel.receiveSync();
      window.count();
    } catch (error) {
      const e = error as ShmChanError;
      if (e.code === 'ERR_LAGGED') lost += e.lost!;
      else if (e.code === 'ERR_ENDED') break;
      else throw error;
    }
  }
  channel.close();
  finish({ lost });
}

/** A shmchan producer: sends until the window is over (the runner ends the stream once every producer is done). */
async function shmchanProducer(): Promise<void> {
  const channel = Channel.open(spec.address);
  sayReady();
  await go();
  let seq = 0;
  while (window.count()) channel.sendSync(make(seq++));
  channel.close();
  finish();
}

/** A socket receiver (a fan-out subscriber or a worker): listens on its own socket. */
async function socketReceiver(): Promise<void> {
  const server = net.createServer((socket) => {
    const reader = new FrameReader((bytes) => {
      unpackr.unpack(bytes);
      window.count();
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('end', () => finish());
  });
  server.listen(`${spec.address}-r${spec.index}`, sayReady);
  await go();
}

/** The fan-out producer on sockets: encodes each message once and writes it to every subscriber. */
async function socketFanout(): Promise<void> {
  const sockets = await Promise.all(Array.from({ length: spec.consumers }, (_, i) => connect(`${spec.address}-r${i}`)));
  sayReady();
  await go();
  let seq = 0;
  while (window.count()) {
    const bytes = packFrame(make(seq++));
    const full = sockets.filter((s) => !s.write(bytes));
    if (full.length > 0) await Promise.all(full.map((s) => new Promise((resolve) => s.once('drain', resolve))));
  }
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.end(() => resolve()))));
  finish();
}

/** A work-queue producer on sockets: writes each message to the dispatcher. */
async function socketProducer(): Promise<void> {
  const socket = await connect(`${spec.address}-d`);
  sayReady();
  await go();
  let seq = 0;
  while (window.count()) if (!socket.write(packFrame(make(seq++)))) await new Promise((resolve) => socket.once('drain', resolve));
  await new Promise<void>((resolve) => socket.end(() => resolve()));
  finish();
}

/**
 * The dispatcher of the socket work queue: takes frames from every producer and
 * hands each, as it came (not decoded), to the next worker in turn. While a worker's
 * socket is full every producer is paused, so nothing piles up in this process.
 */
async function dispatcher(): Promise<void> {
  const workers = await Promise.all(Array.from({ length: spec.consumers }, (_, i) => connect(`${spec.address}-r${i}`)));
  const producers: net.Socket[] = [];
  let next = 0;
  let open = spec.producers;
  const server = net.createServer((socket) => {
    producers.push(socket);
    const reader = new FrameReader((bytes) => {
      const worker = workers[next];
      next = (next + 1) % workers.length;
      if (!worker.write(frameOf(bytes))) {
        for (const p of producers) p.pause();
        worker.once('drain', () => producers.forEach((p) => p.resume()));
      }
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('end', () => {
      if (--open === 0) {
        for (const w of workers) w.end();
        server.close();
        finish();
      }
    });
  });
  server.listen(`${spec.address}-d`, sayReady);
}

const roles: Record<string, () => Promise<void>> = {
  'shmchan-receiver': shmchanReceiver,
  'shmchan-producer': shmchanProducer,
  'socket-receiver': socketReceiver,
  'socket-fanout': socketFanout,
  'socket-producer': socketProducer,
  dispatcher,
};

runTrialProcess(`pattern trial (${role}, ${spec.mechanism})`, roles[role]);
