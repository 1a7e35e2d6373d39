// Every mechanism the benchmarks compare, behind one interface. A trial's main
// process opens its side with openMain(), which also starts the peers (processes,
// or worker threads for MessagePort); each peer opens its side with openPeer().
//
// A side has receivers (endpoints messages arrive on) and senders (endpoints it
// writes to). An endpoint offers:
//   write(value)      sends one message; returns undefined, or a promise to await
//                     before the next write when the mechanism pushes back
//   listen(handler)   calls handler(value) for each message until it returns true
//   next()            a promise of the next message
//   nextSync()        shmchan only, with the 'sync' API: blocks this thread
// Each mechanism does one write (one send call) per message and batches only as
// far as the mechanism itself does.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { Worker, type MessagePort } from 'node:worker_threads';
import { Packr, Unpackr } from 'msgpackr';
import type { Backend, Channel, CreateOptions, Mode } from '../index';

const trialScript = path.join(__dirname, 'trial.js');

// ---- trials ----

/** How long each part of a trial lasts; the runner picks the set (full, quick or tiny). */
export interface Durations {
  warmMs: number;
  measureMs: number;
  parkedMs: number;
  wakeup: { warmCount: number; count: number };
  throughput: { repeats: number; measureMs: number };
}

/** What a trial's process is told on its command line (or as a worker's data). */
export interface TrialSpec {
  id: string;
  scenario: string;
  message: string;
  /** null for a scenario without peers (msgpackr alone) */
  mechanism: string | null;
  peers: number;
  durations: Durations;
  repeats: number;
  api: 'sync' | 'async';
  role: 'main' | 'peer';
  /** a peer's number, from 0 */
  index?: number;
  /** named by the runner, which removes them after the trial */
  resources: { channels: [down: string, up: string]; socket: string; dir: string | null };
}

// ---- messages ----

/** The same settings as shmchan's own msgpack codec, for every mechanism that uses msgpackr. */
export const packr = new Packr({ useRecords: false });
export const unpackr = new Unpackr({ useRecords: false });

const payload = Buffer.alloc(64, 0x5a);

interface MessageKind {
  label: string;
  raw: boolean;
  make(seq: number): unknown;
}

/** The messages every mechanism carries. `make(seq)` may return the same object each time. */
export const messageKinds: Record<string, MessageKind> = {
  small: {
    label: 'small object',
    raw: false,
    make: (() => {
      const message = { seq: 0, ts: 0, kind: 'tick', payload };
      return (seq: number) => {
        message.seq = seq;
        message.ts = Date.now();
        return message;
      };
    })(),
  },
  raw64: { label: 'raw 64 B', raw: true, make: (() => { const b = Buffer.alloc(64, 7); return () => b; })() },
  raw1k: { label: 'raw 1 KiB', raw: true, make: (() => { const b = Buffer.alloc(1024, 7); return () => b; })() },
  raw64k: { label: 'raw 64 KiB', raw: true, make: (() => { const b = Buffer.alloc(65536, 7); return () => b; })() },
};

/** Bytes one message carries: its length when raw, its msgpack encoding otherwise. */
export function messageBytes(kind: string): number {
  const k = messageKinds[kind];
  return k.raw ? (k.make(0) as Buffer).length : packr.pack(k.make(0)).length;
}

// ---- mechanisms ----

interface ShmchanMechanism {
  id: string;
  label: string;
  family: 'shmchan';
  backend: Backend;
  mode: Mode;
  multiProducer: boolean;
  records?: boolean;
  /** the message kinds it carries, when not all */
  messages?: string[];
  /** How it sends and receives, when not the fastest calls there are: 'idiomatic'
   * runs the README's example code (`await send()`, `for await`), 'views' receives
   * raw messages as views into the ring (receiveView), 'sync' / 'async' pick the
   * receiving calls whatever SHMCHAN_BENCH_API says. Such rows are compared with
   * the plain row of the same backend and mode; the targets are not checked on them. */
  api?: 'idiomatic' | 'views' | TrialSpec['api'];
}

type Mechanism =
  | ShmchanMechanism
  | { id: string; label: string; family: 'pipe' | 'unix' | 'messageport'; multiProducer: boolean; messages?: undefined }
  | { id: string; label: string; family: 'ipc'; serialization: 'json' | 'advanced'; multiProducer: boolean; messages?: undefined };

const shmchanVariants = (['posix', 'sysv'] as const).flatMap((backend) =>
  (['spsc', 'mpsc'] as const).map(
    (mode): ShmchanMechanism => ({
      id: `shmchan-${backend}-${mode}`,
      label: `shmchan ${backend} ${mode}`,
      family: 'shmchan',
      backend,
      mode,
      multiProducer: mode === 'mpsc',
    }),
  ),
);

export const mechanisms: Mechanism[] = [
  ...shmchanVariants,
  // What `records: true` gives (README, "Records: shared key lists"): posix spsc
  // with msgpackr records over the segment's shared structures, so objects only.
  {
    ...shmchanVariants.find((v) => v.id === 'shmchan-posix-spsc')!,
    id: 'shmchan-posix-spsc-records',
    label: 'shmchan posix spsc records',
    records: true,
    messages: ['small'],
  },
  {
    ...shmchanVariants.find((v) => v.id === 'shmchan-posix-spsc')!,
    id: 'shmchan-posix-spsc-idiomatic',
    label: 'shmchan posix spsc idiomatic',
    api: 'idiomatic',
    messages: ['small'],
  },
  {
    ...shmchanVariants.find((v) => v.id === 'shmchan-posix-spsc')!,
    id: 'shmchan-posix-spsc-views',
    label: 'shmchan posix spsc views',
    api: 'views',
    messages: ['raw64', 'raw1k', 'raw64k'],
  },
  // `await receive()`: waits sleep on the addon's waiter threads, and their end
  // reaches JavaScript through the event loop (the other rows block in receiveSync).
  {
    ...shmchanVariants.find((v) => v.id === 'shmchan-posix-spsc')!,
    id: 'shmchan-posix-spsc-await',
    label: 'shmchan posix spsc await',
    api: 'async',
    messages: ['small'],
  },
  { id: 'pipe', label: 'pipe (FIFO)', family: 'pipe', multiProducer: true },
  { id: 'unix', label: 'unix socket', family: 'unix', multiProducer: true },
  { id: 'ipc-json', label: "child IPC 'json'", family: 'ipc', serialization: 'json', multiProducer: true },
  { id: 'ipc-advanced', label: "child IPC 'advanced'", family: 'ipc', serialization: 'advanced', multiProducer: true },
  { id: 'messageport', label: 'MessagePort (threads)', family: 'messageport', multiProducer: true },
];

export const mechanismById: Record<string, Mechanism> = Object.fromEntries(mechanisms.map((m) => [m.id, m]));

// ---- endpoints and sides ----

/** Called with each message; returning true stops the listening. */
export type Handler = (value: unknown) => boolean | void;

export interface Endpoint {
  write(value: unknown): Promise<unknown> | undefined;
  listen(handler: Handler): void | Promise<void>;
  next(): Promise<unknown>;
  nextSync?: () => unknown;
}

export interface MainSide {
  receivers: Endpoint[];
  senders: Endpoint[];
  peers: Peers;
  closers: (() => void)[];
  /** what the trial's result should also say about how it ran */
  facts: { records?: boolean };
  close(): Promise<void>;
}

export interface PeerSide {
  receiver: Endpoint;
  sender: Endpoint;
}

// ---- delivery for event-driven mechanisms ----

/** Messages that arrive by callback, handed to a listener or to next() callers. */
class Inbox {
  handler: Handler | null = null;
  waiters: ((value: unknown) => void)[] = [];
  queue: unknown[] = [];

  deliver(value: unknown): void {
    if (this.handler !== null) {
      if (this.handler(value) === true) this.handler = null;
    } else if (this.waiters.length > 0) this.waiters.shift()!(value);
    else this.queue.push(value);
  }

  listen(handler: Handler): void {
    while (this.queue.length > 0) if (handler(this.queue.shift()) === true) return;
    this.handler = handler;
  }

  next(): Promise<unknown> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

// ---- byte streams: pipe and unix socket ----

const BIG_FRAME = 16384;

/** Splits a byte stream into length-prefixed frames (u32 little-endian length, then the bytes). */
export class FrameReader {
  parts: Buffer[] = [];
  have = 0;
  onFrame: (frame: Buffer) => void;

  constructor(onFrame: (frame: Buffer) => void) {
    this.onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    if (this.have > 0) {
      this.parts.push(chunk);
      this.have += chunk.length;
      if (this.have < 4) return;
      if (this.parts[0].length < 4) this.parts = [Buffer.concat(this.parts, this.have)];
      if (this.have < 4 + this.parts[0].readUInt32LE(0)) return;
      chunk = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.have);
      this.parts = [];
      this.have = 0;
    }
    let offset = 0;
    while (chunk.length - offset >= 4) {
      const end = offset + 4 + chunk.readUInt32LE(offset);
      if (end > chunk.length) break;
      this.onFrame(chunk.subarray(offset + 4, end));
      offset = end;
    }
    if (offset < chunk.length) {
      this.parts.push(chunk.subarray(offset));
      this.have = chunk.length - offset;
    }
  }
}

/** `bytes` as a frame FrameReader reads: its u32 little-endian length, then the bytes. */
export function frameOf(bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(4 + bytes.length);
  frame.writeUInt32LE(bytes.length, 0);
  frame.set(bytes, 4);
  return frame;
}

/** A value as a frame of its msgpack encoding. */
export const packFrame = (value: unknown): Buffer => frameOf(packr.pack(value));

class StreamEndpoint implements Endpoint {
  writable: Writable;
  raw: boolean;
  inbox = new Inbox();

  constructor(readable: net.Socket | null, writable: Writable, raw: boolean) {
    this.writable = writable;
    this.raw = raw;
    if (readable !== null) {
      const reader = new FrameReader(raw ? (frame) => this.inbox.deliver(frame) : (frame) => this.inbox.deliver(unpackr.unpack(frame)));
      readable.on('data', (chunk: Buffer) => reader.push(chunk));
    }
  }

  write(value: unknown): Promise<unknown> | undefined {
    const bytes = this.raw ? (value as Buffer) : packr.pack(value);
    const w = this.writable;
    let ok;
    if (bytes.length < BIG_FRAME) {
      const frame = Buffer.allocUnsafe(4 + bytes.length);
      frame.writeUInt32LE(bytes.length, 0);
      frame.set(bytes, 4);
      ok = w.write(frame);
    } else {
      // two chunks, one writev: no copy of a big message into a frame
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32LE(bytes.length, 0);
      w.cork();
      w.write(header);
      ok = w.write(bytes);
      w.uncork();
    }
    return ok ? undefined : once(w, 'drain');
  }

  listen(handler: Handler): void {
    this.inbox.listen(handler);
  }

  next(): Promise<unknown> {
    return this.inbox.next();
  }
}

const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

function fifoReader(file: string): net.Socket {
  return new net.Socket({ fd: fs.openSync(file, O_RDONLY | O_NONBLOCK), readable: true, writable: false });
}

/** Opens a FIFO for writing once its reader has opened it (ENXIO until then). */
async function fifoWriter(file: string): Promise<net.Socket> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return new net.Socket({ fd: fs.openSync(file, O_WRONLY | O_NONBLOCK), readable: false, writable: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}

// ---- child_process IPC ----

/** A ChildProcess, or process in the child. */
interface IpcTarget {
  send(value: unknown, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (value: unknown) => void): unknown;
}

/** process.send() has no 'drain': count flushed messages and wait for the backlog to shrink. */
class IpcEndpoint implements Endpoint {
  sent = 0;
  flushed = 0;
  resume: (() => void) | null = null;
  target: IpcTarget;
  inbox = new Inbox();
  onFlushed: () => void;

  constructor(target: IpcTarget) {
    this.target = target;
    target.on('message', (value) => this.inbox.deliver(value));
    this.onFlushed = () => {
      this.flushed++;
      if (this.resume !== null && this.sent - this.flushed <= 64) {
        const resume = this.resume;
        this.resume = null;
        resume();
      }
    };
  }

  write(value: unknown): Promise<void> | undefined {
    this.sent++;
    if (this.target.send(value, this.onFlushed)) return undefined;
    return new Promise((resolve) => (this.resume = resolve));
  }

  listen(handler: Handler): void {
    this.inbox.listen(handler);
  }

  next(): Promise<unknown> {
    return this.inbox.next();
  }
}

// ---- worker_threads MessagePort ----

/** postMessage queues without limit: the receiver acknowledges every ACK_EVERY messages
 * (a number message), and the sender keeps at most `window` unacknowledged. */
const ACK_EVERY = 256;

/** A Worker, or parentPort in the worker. */
type Port = Pick<MessagePort, 'postMessage'> & { on(event: 'message', listener: (value: unknown) => void): unknown };

class PortEndpoint implements Endpoint {
  sent = 0;
  acked = 0;
  received = 0;
  resume: (() => void) | null = null;
  port: Port;
  raw: boolean;
  window: number;
  inbox = new Inbox();

  constructor(port: Port, raw: boolean, bytes: number) {
    this.port = port;
    this.raw = raw;
    this.window = Math.max(4 * ACK_EVERY, Math.min(16 * ACK_EVERY, Math.floor((16 << 20) / bytes)));
    port.on('message', (data) => {
      if (typeof data === 'number') {
        this.acked = data;
        if (this.resume !== null && this.sent - this.acked < this.window) {
          const resume = this.resume;
          this.resume = null;
          resume();
        }
        return;
      }
      if (++this.received % ACK_EVERY === 0) port.postMessage(this.received);
      this.inbox.deliver(raw ? data : unpackr.unpack(data as Buffer));
    });
  }

  write(value: unknown): Promise<void> | undefined {
    this.port.postMessage(this.raw ? value : packr.pack(value));
    if (++this.sent - this.acked < this.window) return undefined;
    return new Promise((resolve) => (this.resume = resolve));
  }

  listen(handler: Handler): void {
    this.inbox.listen(handler);
  }

  next(): Promise<unknown> {
    return this.inbox.next();
  }
}

// ---- shmchan ----

/** shmchan loads only in the trials that measure it: the other mechanisms'
 * processes and worker threads run without its addon. */
let shmchan: typeof import('../index') | undefined;
async function loadShmchan(): Promise<typeof import('../index')> {
  shmchan ??= await import('../index.js');
  return shmchan;
}

class ShmchanEndpoint implements Endpoint {
  channel: Channel;
  nextSync?: () => unknown;

  constructor(channel: Channel, api: TrialSpec['api']) {
    this.channel = channel;
    if (api === 'sync') this.nextSync = () => channel.receiveSync();
  }

  write(value: unknown): Promise<void> | undefined {
    return this.channel.trySend(value) ? undefined : this.channel.send(value);
  }

  async listen(handler: Handler): Promise<void> {
    const channel = this.channel;
    for (;;) {
      let value;
      while ((value = channel.tryReceive()) !== undefined) if (handler(value) === true) return;
      // receive() spins briefly before it sleeps
      if (handler(await channel.receive()) === true) return;
    }
  }

  next(): Promise<unknown> {
    return this.channel.receive();
  }
}

/**
 * Raw messages are received with receiveInto, into one buffer the endpoint reuses,
 * as a user after raw speed would: a message handed on is a view of that buffer,
 * valid until the next receive (the echo peer's trySend copies it at once).
 */
class RawShmchanEndpoint extends ShmchanEndpoint {
  into: Uint8Array;
  view: Uint8Array;

  constructor(channel: Channel, api: TrialSpec['api']) {
    super(channel, api);
    const into = new Uint8Array(channel.maxMessageSize);
    this.into = into;
    this.view = into.subarray(0, 0);
    if (api === 'sync') this.nextSync = () => this.message(channel.receiveIntoSync(into));
  }

  /** The message as a view of the buffer. The view of the last length is kept:
   * making one per message costs as much as the copy into it. */
  message(length: number): Uint8Array {
    if (this.view.length !== length) this.view = this.into.subarray(0, length);
    return this.view;
  }

  override async listen(handler: Handler): Promise<void> {
    const { channel, into } = this;
    for (;;) {
      let length;
      while ((length = channel.tryReceiveInto(into)) !== undefined) if (handler(this.message(length)) === true) return;
      if (handler(this.message(await channel.receiveInto(into))) === true) return;
    }
  }

  override async next(): Promise<unknown> {
    return this.message(await this.channel.receiveInto(this.into));
  }
}

/**
 * The README's example code, as a user would write it: `await channel.send(value)`
 * for every message, and `for await (const value of channel)` to receive.
 */
class IdiomaticShmchanEndpoint extends ShmchanEndpoint {
  constructor(channel: Channel) {
    super(channel, 'async');
  }

  override write(value: unknown): Promise<void> {
    return this.channel.send(value);
  }

  override async listen(handler: Handler): Promise<void> {
    for await (const value of this.channel) if (handler(value) === true) return;
  }
}

/** Raw messages received as views into the ring, valid until the next receive
 * (the echo peer's trySend copies each at once): no copy on the receiving side. */
class ViewShmchanEndpoint extends ShmchanEndpoint {
  constructor(channel: Channel<Buffer>, api: TrialSpec['api']) {
    super(channel, api);
    if (api === 'sync') this.nextSync = undefined; // receiveView waits asynchronously only
  }

  override async listen(handler: Handler): Promise<void> {
    const channel = this.channel as Channel<Buffer>;
    for (;;) {
      let view;
      while ((view = channel.tryReceiveView()) !== undefined) if (handler(view) === true) return;
      if (handler(await channel.receiveView()) === true) return;
    }
  }

  override next(): Promise<unknown> {
    return (this.channel as Channel<Buffer>).receiveView();
  }
}

function shmchanEndpoint(channel: Channel, spec: TrialSpec): ShmchanEndpoint {
  const api = (mechanismById[spec.mechanism!] as ShmchanMechanism).api;
  if (api === 'idiomatic') return new IdiomaticShmchanEndpoint(channel);
  if (api === 'views') return new ViewShmchanEndpoint(channel as Channel<Buffer>, spec.api);
  const calls = api ?? spec.api;
  return messageKinds[spec.message].raw ? new RawShmchanEndpoint(channel, calls) : new ShmchanEndpoint(channel, calls);
}

/** The options of a trial's two channels: down (main to peers) and up (peers to main). */
function shmchanOptions(m: ShmchanMechanism, spec: TrialSpec): CreateOptions {
  return {
    backend: m.backend,
    mode: m.mode,
    codec: messageKinds[spec.message].raw ? 'raw' : 'msgpack',
    records: m.records === true,
  };
}

// ---- peers ----

/** Processes and workers a main side started; stop() ends them and waits until they are gone. */
export class Peers {
  children: ChildProcess[] = [];
  workers: Worker[] = [];
  stopping = false;
  failed: Error | null = null;

  watch(peer: EventEmitter, what: string): void {
    peer.once('exit', (code: number | null, signal?: NodeJS.Signals | null) => {
      if (!this.stopping) this.failed ??= new Error(`${what} exited early (${signal ?? `code ${code}`})`);
    });
    peer.once('error', (error: Error) => (this.failed ??= error));
  }

  spawn(peerSpec: TrialSpec, { ipc }: { ipc?: 'json' | 'advanced' } = {}): ChildProcess {
    const args = [trialScript, JSON.stringify(peerSpec)];
    const child = ipc
      ? fork(trialScript, args.slice(1), { serialization: ipc, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
      : spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.watch(child, `peer process ${peerSpec.index}`);
    this.children.push(child);
    return child;
  }

  worker(peerSpec: TrialSpec): Worker {
    const worker = new Worker(trialScript, { workerData: peerSpec, stdout: false, stderr: false });
    this.watch(worker, `peer worker ${peerSpec.index}`);
    this.workers.push(worker);
    return worker;
  }

  check(): void {
    if (this.failed !== null) throw this.failed;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const exits = this.children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => once(c, 'exit'));
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.all([...exits, ...this.workers.map((w) => w.terminate())]);
  }
}

/**
 * Opens the main side of a trial and starts `spec.peers` peers. Resolves when every
 * peer is connected. The side's close() stops the peers first, then closes.
 */
export async function openMain(spec: TrialSpec): Promise<MainSide> {
  const m = mechanismById[spec.mechanism!];
  const { raw } = messageKinds[spec.message];
  const peers = new Peers();
  const peerSpec = (index: number): TrialSpec => ({ ...spec, role: 'peer', index });
  const indexes = [...Array(spec.peers).keys()];
  const side: MainSide = {
    receivers: [],
    senders: [],
    peers,
    closers: [],
    facts: {},
    close: async () => {
      await peers.stop();
      for (const close of side.closers) close();
    },
  };

  switch (m.family) {
    case 'shmchan': {
      const { Channel } = await loadShmchan();
      const options = shmchanOptions(m, spec);
      const [downName, upName] = spec.resources.channels;
      const down = Channel.create(downName, options);
      const up = Channel.create(upName, options);
      side.facts.records = up.records; // as the segment's header says, which openers follow
      side.closers.push(() => down.close(), () => up.close());
      side.senders.push(shmchanEndpoint(down, spec));
      side.receivers.push(shmchanEndpoint(up, spec));
      indexes.forEach((i) => peers.spawn(peerSpec(i)));
      break;
    }
    case 'unix': {
      const server = net.createServer();
      const connections: net.Socket[] = [];
      const all = new Promise<void>((resolve) =>
        server.on('connection', (socket) => connections.push(socket) === spec.peers && resolve()),
      );
      server.listen(spec.resources.socket);
      await once(server, 'listening');
      indexes.forEach((i) => peers.spawn(peerSpec(i)));
      await Promise.race([all, failureOf(peers)]);
      server.close();
      for (const socket of connections) {
        const endpoint = new StreamEndpoint(socket, socket, raw);
        side.receivers.push(endpoint);
        side.senders.push(endpoint);
        side.closers.push(() => socket.destroy());
      }
      break;
    }
    case 'pipe': {
      const dir = spec.resources.dir!;
      for (const i of indexes) execFileSync('mkfifo', ['-m', '600', path.join(dir, `down-${i}`), path.join(dir, `up-${i}`)]);
      const readables = indexes.map((i) => fifoReader(path.join(dir, `up-${i}`)));
      indexes.forEach((i) => peers.spawn(peerSpec(i)));
      const writables = await Promise.race([Promise.all(indexes.map((i) => fifoWriter(path.join(dir, `down-${i}`)))), failureOf(peers)]);
      for (const i of indexes) {
        const endpoint = new StreamEndpoint(readables[i], writables[i], raw);
        side.receivers.push(endpoint);
        side.senders.push(endpoint);
        side.closers.push(() => readables[i].destroy(), () => writables[i].destroy());
      }
      break;
    }
    case 'ipc':
      for (const i of indexes) {
        const endpoint = new IpcEndpoint(peers.spawn(peerSpec(i), { ipc: m.serialization }));
        side.receivers.push(endpoint);
        side.senders.push(endpoint);
      }
      break;
    case 'messageport':
      for (const i of indexes) {
        const endpoint = new PortEndpoint(peers.worker(peerSpec(i)), raw, messageBytes(spec.message));
        side.receivers.push(endpoint);
        side.senders.push(endpoint);
      }
      break;
    default:
      throw new Error(`unknown mechanism ${spec.mechanism}`);
  }
  return side;
}

/** A promise that rejects once a peer has failed (and never resolves otherwise). */
function failureOf(peers: Peers): Promise<never> {
  return new Promise((_resolve, reject) => {
    const poll = setInterval(() => {
      if (peers.failed !== null) {
        clearInterval(poll);
        reject(peers.failed);
      }
    }, 20);
    poll.unref();
  });
}

/** Opens a peer's side: one receiver (from main) and one sender (to main). */
export async function openPeer(spec: TrialSpec, parentPort: MessagePort | null): Promise<PeerSide> {
  const m = mechanismById[spec.mechanism!];
  const { raw } = messageKinds[spec.message];
  let endpoint;
  switch (m.family) {
    case 'shmchan': {
      const { Channel } = await loadShmchan();
      const [downName, upName] = spec.resources.channels;
      const { backend } = m;
      const down = Channel.open(downName, { backend, timeout: 10_000 });
      const up = Channel.open(upName, { backend, timeout: 10_000 });
      return { receiver: shmchanEndpoint(down, spec), sender: shmchanEndpoint(up, spec) };
    }
    case 'unix': {
      const socket = net.connect(spec.resources.socket);
      await once(socket, 'connect');
      endpoint = new StreamEndpoint(socket, socket, raw);
      break;
    }
    case 'pipe': {
      const dir = spec.resources.dir!;
      const readable = fifoReader(path.join(dir, `down-${spec.index}`));
      endpoint = new StreamEndpoint(readable, await fifoWriter(path.join(dir, `up-${spec.index}`)), raw);
      break;
    }
    case 'ipc':
      // forked with an IPC channel, so process.send is there
      endpoint = new IpcEndpoint(process as IpcTarget);
      break;
    case 'messageport':
      // a MessagePort peer is a worker thread, so parentPort is there
      endpoint = new PortEndpoint(parentPort!, raw, messageBytes(spec.message));
      break;
    default:
      throw new Error(`unknown mechanism ${spec.mechanism}`);
  }
  return { receiver: endpoint, sender: endpoint };
}
