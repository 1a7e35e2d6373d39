// A service's client: it sends requests on the service's queue and reads the
// replies from a reply channel of its own, matching them to the requests in
// flight by id. It watches the queue's live consumers (the workers, held by the
// kernel) only while requests wait and no reply comes, so that a service whose
// workers have all gone fails them with ERR_PEER_GONE instead of a silent wait.
import { Channel } from './core/channel';
import type { CodecOption } from './core/codec';
import { DecodeFailure, abortError, dataPathError, describe, errorFromErrno, invalidArg, peerGone, remoteError, timedOut } from './core/errors';
import { closeAtExit, forgetAtExit } from './core/exit';
import { channelInternals } from './core/internals';
import { IdTable } from './core/id-table';
import * as L from './core/layout';
import type { Backend, CreateOptions } from './core/options';
import {
  closeQueue,
  knownOptions,
  letMicrotasksRun,
  monotonicMs,
  parseRemote,
  parseReply,
  removeStaleReplyChannels,
  randomClientNumber,
  replyChannelName,
  replyPrefix,
  requestMessage,
  serviceName,
  valueCodec,
  type ValueCodec,
} from './service-wire';

const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
const asyncDisposeSymbol: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');

/** How often waiting requests look at the number of live workers. */
const WATCH_MS = 300;
/** Looks in a row that find no worker before the requests fail: a second look
 * covers a service caught between creating its queue and claiming its slot. */
const EMPTY_LOOKS = 2;
/** Replies taken back to back before the loop lets timers and I/O run. */
const BATCH = 64;

/** Numbers a client tries before it gives up: another live client has each one
 * it meets only by a chance of about one in 2^32 / clients. */
const NUMBER_TRIES = 16;

/** Creates a new client's reply channel under a client number nobody has taken. */
function createReplyChannel(service: string, options: CreateOptions): { replies: Channel<unknown>; number: number } {
  for (let tries = 1; ; tries++) {
    const number = randomClientNumber();
    try {
      return { replies: Channel.create<unknown>(replyChannelName(replyPrefix(service), number), options), number };
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_CHANNEL_EXISTS' || tries === NUMBER_TRIES) throw error;
    }
  }
}

/** Options of Client.connect. */
export interface ClientOptions<Req = unknown> {
  /** How long to wait for the service to appear, in ms; none: as long as it takes. */
  timeout?: number;
  /** Stops waiting for the service: rejects with an AbortError. */
  signal?: AbortSignal;
  /** The service's codec: 'msgpack' (default) or the same custom codec its workers use. */
  codec?: CodecOption<Req>;
  /** The service's backend. Default 'posix'. */
  backend?: Backend;
}

/** Options of Client.request. */
export interface RequestOptions {
  /** Milliseconds until the request rejects with ERR_TIMEOUT; a later reply is dropped. */
  timeout?: number;
  /** Rejects the request with an AbortError; a later reply is dropped. */
  signal?: AbortSignal;
}

interface Pending {
  readonly id: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Set while the request waits for room in a full queue. */
  sending: AbortController | undefined;
}

/**
 * Request/reply: a client of a service. Many requests may be in flight; each
 * settles once, with the reply to it (see docs/services.md).
 */
export class Client<Req = unknown, Res = unknown> {
  /** The service's name. */
  readonly name: string;
  private readonly queue: Channel<unknown>;
  private readonly replies: Channel<unknown>;
  /** This client's number, which its requests carry: it names the reply channel. */
  private readonly number: number;
  private readonly codec: ValueCodec;
  private readonly pending = new IdTable<Pending>();
  private nextId = 1;
  private receiving = false;
  /** Whether a sleep for replies keeps the process alive (see receiveReplies). */
  private refed = false;
  /** True while receiveReplies awaits a reply, which may be asleep. */
  private awaitingReply = false;
  private closedError: Error | undefined;
  private watch: NodeJS.Timeout | undefined;
  private repliedSinceLook = false;
  private emptyLooks = 0;
  private workersGone = false;
  private lastLook = 0;
  private readonly atExit: WeakRef<{ close(): void }>;

  private constructor(queue: Channel<unknown>, replies: Channel<unknown>, number: number, codec: ValueCodec) {
    this.name = queue.name;
    this.queue = queue;
    this.replies = replies;
    this.number = number;
    this.codec = codec;
    // a client that ends without close() still lets go of the queue as close() does
    this.atExit = closeAtExit(this);
  }

  /** Connects to a service, waiting for it to appear (as Channel.connect does). */
  static async connect<Req = unknown, Res = unknown>(name: string, options?: ClientOptions<Req>): Promise<Client<Req, Res>> {
    const o = knownOptions(options, ['timeout', 'signal', 'codec', 'backend'], 'Client.connect');
    const service = serviceName(name);
    const codec = valueCodec(o.codec as CodecOption<unknown> | undefined, `service '${service}'`);
    const queue = await Channel.connect<unknown>(service, {
      timeout: o.timeout as number | undefined,
      signal: o.signal as AbortSignal | undefined,
      backend: o.backend as Backend | undefined,
    });
    try {
      if (queue.mode !== 'mpmc')
        throw invalidArg(`'${service}' is a channel of mode '${queue.mode}', not a service (a service's queue is an 'mpmc' channel made by Service.create)`);
      removeStaleReplyChannels(service, queue.backend);
      // workers of the service's users must be able to open it: its permissions
      const permissions = (Atomics.load(queue[channelInternals]().ring.i32, L.OFF_PERMISSIONS >> 2) & 0o777) | 0o600;
      const { replies, number } = createReplyChannel(service, {
        mode: 'mpsc',
        backend: queue.backend,
        capacity: queue.capacity,
        maxMessageSize: queue.maxMessageSize,
        permissions,
      });
      // the consumer role, held from now on, is how workers know this client lives
      replies.tryReceive();
      return new Client<Req, Res>(queue, replies, number, codec);
    } catch (error) {
      closeQueue(queue);
      throw error;
    }
  }

  /**
   * Sends a request and resolves with its reply. Many may be in flight; each
   * settles exactly once. Rejects with ERR_REMOTE when the handler failed it,
   * ERR_TIMEOUT / AbortError locally, ERR_PEER_GONE when every worker has gone.
   */
  request(value: Req, options?: RequestOptions): Promise<Res> {
    try {
      if (this.closedError !== undefined) throw this.closedError;
      const o = knownOptions(options, ['timeout', 'signal'], 'request');
      const timeout = o.timeout as number | undefined;
      const signal = o.signal as AbortSignal | undefined;
      if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0 && timeout <= 2 ** 31 - 1))
        throw invalidArg(`service '${this.name}': timeout must be a number of milliseconds from 0 to 2147483647, got ${describe(timeout)}`);
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg(`service '${this.name}': signal must be an AbortSignal, got ${describe(signal)}`);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      if (this.workersGone && !this.workersBack()) throw this.goneError();
      const id = this.nextId++;
      // the deadline tells the worker when to give up too (docs/services.md)
      const deadline = timeout === undefined ? undefined : monotonicMs() + Math.ceil(timeout);
      const message = requestMessage(this.number, id, this.codec.toWire(value), deadline);
      return new Promise<Res>((resolve, reject) => {
        const entry: Pending = { id, resolve: resolve as (value: unknown) => void, reject, timer: undefined, signal, onAbort: undefined, sending: undefined };
        // sent first: a value that cannot be sent throws before anything is pending
        if (!this.queue.trySend(message)) this.sendWhenRoom(id, entry, message);
        this.pending.add(entry);
        if (timeout !== undefined)
          entry.timer = setTimeout(() => this.settle(id, timedOut(`service '${this.name}': no reply within ${timeout} ms (a late reply is dropped)`)), timeout);
        if (signal !== undefined) {
          entry.onAbort = () => this.settle(id, abortError(signal));
          signal.addEventListener('abort', entry.onAbort, { once: true });
        }
        if (this.pending.size === 1) this.becomeBusy();
        if (!this.receiving) {
          this.receiving = true;
          queueMicrotask(() => void this.receiveReplies());
        }
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A queue with no room: the request waits for some, unless it settles first. */
  private sendWhenRoom(id: number, entry: Pending, message: unknown[]): void {
    entry.sending = new AbortController();
    this.queue.send(message, { signal: entry.sending.signal }).then(
      () => (entry.sending = undefined),
      (error: { code?: string }) => {
        if (error?.code !== 'ABORT_ERR') this.settle(id, error);
      },
    );
  }

  private becomeBusy(): void {
    if (this.awaitingReply) this.keepAlive(true);
    this.emptyLooks = 0;
    this.repliedSinceLook = false;
    this.watch ??= setInterval(() => this.lookForWorkers(), WATCH_MS).unref();
  }

  /** Settles a request in flight, once: with an error, or with a reply's value. */
  private settle(id: number, error: unknown, value?: unknown): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return; // settled already: a late reply, a second timeout
    this.pending.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    if (entry.onAbort !== undefined) entry.signal!.removeEventListener('abort', entry.onAbort);
    entry.sending?.abort();
    if (this.pending.size === 0 && this.closedError === undefined) this.becomeIdle();
    if (error === undefined) entry.resolve(value);
    else entry.reject(error);
  }

  /** Nothing in flight: a sleep for replies no longer keeps the process alive. The
   * watch stops at its next look: starting and stopping a timer per request, with one
   * request in flight at a time, would cost more than the request's own work. */
  private becomeIdle(): void {
    if (this.awaitingReply) this.keepAlive(false);
  }

  /** Whether a sleep for replies keeps the process alive: while requests are in
   * flight, and only then. Only a sleep in progress or about to start needs it said. */
  private keepAlive(wanted: boolean): void {
    if (this.refed === wanted) return;
    this.refed = wanted;
    if (wanted) this.replies.ref();
    else this.replies.unref();
  }

  /** Reads replies while requests are in flight: without a system call while they come
   * quickly, sleeping (and woken by the replying worker) when they do not. */
  private async receiveReplies(): Promise<void> {
    try {
      let taken = 0;
      while (this.pending.size > 0) {
        let message: unknown;
        try {
          message = this.replies.tryReceive();
          if (message === undefined) {
            await letMicrotasksRun();
            if (this.pending.size === 0) break;
            this.keepAlive(true);
            this.awaitingReply = true;
            try {
              message = await this.replies.receive();
            } finally {
              this.awaitingReply = false;
            }
          }
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code === 'ERR_DECODE') continue; // a message no codec reads: dropped
          if (code !== 'ERR_CLOSED') this.failAll(error);
          return;
        }
        this.repliedSinceLook = true;
        this.take(message);
        if (++taken % BATCH === 0) await new Promise(setImmediate);
      }
    } finally {
      this.receiving = false;
      // a request sent while the loop was ending
      if (this.pending.size > 0 && this.closedError === undefined) {
        this.receiving = true;
        queueMicrotask(() => void this.receiveReplies());
      }
    }
  }

  /** One reply: it settles its request if that is still in flight, and is dropped otherwise. */
  private take(message: unknown): void {
    const reply = parseReply(message);
    if (reply === undefined || !this.pending.has(reply.id)) return;
    if (!reply.ok) return this.settle(reply.id, remoteError(parseRemote(reply.payload)));
    let value: unknown;
    try {
      value = this.codec.fromWire(reply.payload);
    } catch (error) {
      return this.settle(reply.id, dataPathError(new DecodeFailure(error), this.replies.name, this.replies.maxMessageSize));
    }
    this.settle(reply.id, undefined, value);
  }

  /** Every WATCH_MS while requests wait and no reply came: are there workers at all? */
  private lookForWorkers(): void {
    if (this.pending.size === 0) return this.stopWatch();
    if (this.repliedSinceLook) {
      this.repliedSinceLook = false;
      this.emptyLooks = 0;
      return;
    }
    if (this.liveWorkers() > 0) {
      this.emptyLooks = 0;
      return;
    }
    if (++this.emptyLooks < EMPTY_LOOKS) return;
    this.workersGone = true;
    this.failAll(this.goneError());
  }

  private stopWatch(): void {
    clearInterval(this.watch);
    this.watch = undefined;
  }

  /** After all workers had gone: whether one has come back (looked at most every WATCH_MS). */
  private workersBack(): boolean {
    const now = performance.now();
    if (now - this.lastLook < WATCH_MS) return false;
    this.lastLook = now;
    this.workersGone = this.liveWorkers() === 0;
    return !this.workersGone;
  }

  private liveWorkers(): number {
    try {
      return this.queue.stats().consumers;
    } catch {
      return 0;
    }
  }

  private goneError(): Error {
    return peerGone(`service '${this.name}' has no worker left (every worker closed or died); requests cannot be answered until one opens it again`);
  }

  private failAll(error: unknown): void {
    for (const entry of this.pending.values()) this.settle(entry.id, error);
  }

  /** Closes the client: requests in flight reject with ERR_CLOSED; its reply channel is removed. */
  close(): void {
    if (this.closedError !== undefined) return;
    this.closedError = errorFromErrno('EBADF', { channel: this.name });
    this.failAll(this.closedError);
    this.stopWatch();
    forgetAtExit(this.atExit);
    this.replies.close();
    closeQueue(this.queue);
  }

  /** close(), for `using`. */
  [disposeSymbol](): void {
    this.close();
  }

  /** close(), for `await using`. */
  async [asyncDisposeSymbol](): Promise<void> {
    this.close();
  }
}
