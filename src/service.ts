// A service's worker: its handle on the service's request queue (an 'mpmc'
// channel, so each request goes to exactly one worker), the loop that hands
// requests to a handler or an iterator, and the replies it sends back on each
// client's reply channel. The wire shape is in service-wire.ts; docs/services.md
// says what happens when a worker or a client dies.
import { debuglog } from 'node:util';
import { Channel } from './core/channel';
import type { CodecOption } from './core/codec';
import { describe, errorFromErrno, invalidArg, peerGone, serviceExists, timedOut } from './core/errors';
import { closeAtExit, forgetAtExit } from './core/exit';
import { channelInternals } from './core/internals';
import type { Backend } from './core/options';
import { IdTable } from './core/id-table';
import type { MpmcReader } from './core/mpmc';
import { ReplyChannels, SWEEP_MS } from './reply-channels';
import {
  closeQueue,
  failureMessage,
  knownOptions,
  letMicrotasksRun,
  monotonicMs,
  parseRequest,
  removeStaleReplyChannels,
  replyMessage,
  serviceName,
  valueCodec,
  type Envelope,
  type ValueCodec,
} from './service-wire';

const debug = debuglog('shmchan');

const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
const asyncDisposeSymbol: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');

/** Requests taken back to back before the loop lets timers and I/O run. */
const BATCH = 64;
/** What poll() answers when no request is in the queue now. */
const NONE: unique symbol = Symbol('none');
/** The longest delay setTimeout takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of Service.create and Service.open. */
export interface ServiceOptions<Req = unknown> {
  /** Queue bytes (and each client's reply channel's): as for Channel.create. Default 1 MiB. */
  capacity?: number;
  /** Mode bits of the queue and of the reply channels, as for Channel.create. Default 0o600. */
  permissions?: number;
  /** 'posix' (default) or 'sysv': clients pass the same to Client.connect. */
  backend?: Backend;
  /** How requests and replies are encoded: 'msgpack' (default) or a custom codec, the same in workers and clients. */
  codec?: CodecOption<Req>;
  /** Largest encoded request or reply, in bytes. Default capacity / 4. */
  maxMessageSize?: number;
  /** create only: replace a stale queue that still holds requests (as for Channel.create). */
  replaceStale?: boolean;
  /** open only: how long to wait for the service to appear, in ms. Default 1000 (as Channel.open). */
  timeout?: number;
}

/** The queue's consumer slot, which a worker holds from now on: a request's
 * release waits until it is handed out (Service.releaseTaken). */
function workerReader(queue: Channel<unknown>): MpmcReader {
  try {
    const reader = queue[channelInternals]().consumer() as MpmcReader;
    reader.deferRelease = true;
    return reader;
  } catch (error) {
    closeQueue(queue);
    throw error;
  }
}

/** Options of Service.serve. */
export interface ServeOptions {
  /** Handler calls in flight in this worker at most. Default 1. */
  concurrency?: number;
  /** Stops taking requests; serve() resolves once the handler calls in flight have settled. */
  signal?: AbortSignal;
}

/** Answers one request: its result (or the promise of it) is the reply; what it throws reaches the client as ERR_REMOTE. */
export type Handler<Req, Res> = (value: Req, context: { signal: AbortSignal }) => Res | Promise<Res>;

/** One request, as the iterator hands it out: answer it once, with reply or fail. */
export interface Request<Req = unknown, Res = unknown> {
  /** What the client sent. */
  readonly value: Req;
  /** Sends the reply; a request is answered once (ERR_INVALID_ARG the second time). */
  reply(value: Res): void;
  /** Rejects the client's request with ERR_REMOTE carrying this error's name, message and code. */
  fail(error: unknown): void;
}

const createOptions = ['capacity', 'permissions', 'backend', 'codec', 'maxMessageSize', 'replaceStale'] as const;
const openOptions = [...createOptions, 'timeout'] as const;

/**
 * Request/reply: the service's side. One process creates it, any number of worker
 * processes open it too, and each request goes to exactly one worker (see docs/services.md).
 */
export class Service<Req = unknown, Res = unknown> {
  /** The service's name: its queue channel's. */
  readonly name: string;
  private readonly queue: Channel<unknown>;
  private readonly codec: ValueCodec;
  private readonly replies: ReplyChannels;
  /** Aborted by close(): ends serve() and the iterator, and is every handler's signal. */
  private readonly closing = new AbortController();
  /** The queue's consumer side. */
  private readonly reader: MpmcReader;
  /** A request taken when this worker claimed its consumer slot, to be handed out first. */
  private held: unknown;
  private serving = false;
  private sinceYield = 0;
  private readonly atExit: WeakRef<{ close(): void }>;

  private constructor(queue: Channel<unknown>, codec: ValueCodec, backend: Backend) {
    this.queue = queue;
    this.name = queue.name;
    this.codec = codec;
    // A worker is a live consumer of the queue from now on, serving or not: that is
    // what clients count to tell "all workers gone" (docs/services.md).
    this.reader = workerReader(queue);
    try {
      this.held = queue.tryReceive();
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_DECODE') {
        closeQueue(queue);
        throw error;
      }
    }
    this.replies = new ReplyChannels(queue.name, backend);
    removeStaleReplyChannels(queue.name, backend);
    // a worker that ends without close() still lets go of the queue as close() does
    this.atExit = closeAtExit(this);
  }

  /** Creates a service, this process being its first worker; or takes over the queue of
   * one whose workers have all gone while its clients stayed. Fails with ERR_CHANNEL_EXISTS
   * if the name is taken by a live channel that is no such queue. */
  static create<Req = unknown, Res = unknown>(name: string, options?: ServiceOptions<Req>): Service<Req, Res> {
    const o = knownOptions(options, createOptions, 'Service.create');
    const service = serviceName(name);
    const codec = valueCodec(o.codec as CodecOption<unknown> | undefined, `service '${service}'`);
    const { codec: _, ...channelOptions } = o;
    const queue = createQueue(service, channelOptions);
    return new Service<Req, Res>(queue, codec, queue.backend);
  }

  /** Opens an existing service as one more worker. Only backend, codec and timeout matter here. */
  static open<Req = unknown, Res = unknown>(name: string, options?: ServiceOptions<Req>): Service<Req, Res> {
    const o = knownOptions(options, openOptions, 'Service.open');
    const service = serviceName(name);
    const codec = valueCodec(o.codec as CodecOption<unknown> | undefined, `service '${service}'`);
    const queue = Channel.open<unknown>(service, { backend: o.backend as Backend | undefined, timeout: o.timeout as number | undefined });
    if (queue.mode !== 'mpmc') {
      queue.close();
      throw invalidArg(`'${service}' is a channel of mode '${queue.mode}', not a service (a service's queue is an 'mpmc' channel made by Service.create)`);
    }
    return new Service<Req, Res>(queue, codec, queue.backend);
  }

  /**
   * Answers requests with the handler's result (or ERR_REMOTE when it throws) until
   * `signal` aborts or the service closes; then resolves once the handler calls in
   * flight have settled. A handler's error or a bad message never ends it.
   */
  async serve(handler: Handler<Req, Res>, options?: ServeOptions): Promise<void> {
    const o = knownOptions(options, ['concurrency', 'signal'], 'serve');
    if (typeof handler !== 'function') throw invalidArg(`service '${this.name}': serve needs a handler function, got ${describe(handler)}`);
    const concurrency = o.concurrency ?? 1;
    if (!Number.isSafeInteger(concurrency) || (concurrency as number) < 1)
      throw invalidArg(`service '${this.name}': concurrency must be a positive integer, got ${describe(concurrency)}`);
    const stop = o.signal === undefined ? this.closing.signal : AbortSignal.any([this.closing.signal, o.signal as AbortSignal]);
    this.startServing();
    const calls = new IdTable<Call<Req, Res>>();
    let callsStarted = 0;
    const onStop = () => {
      for (const call of calls.values()) call.abort(stop.reason);
    };
    stop.addEventListener('abort', onStop);
    // a client that died or closed gave up on its requests: looked at once a SWEEP_MS, not per
    // request. Kept referenced: handlers that only await their signal must not let the process exit.
    const watch = setInterval(() => this.abortCallsOfGoneClients(calls), SWEEP_MS);
    let freed: (() => void) | undefined;
    const done = (call: Call<Req, Res>) => {
      calls.delete(call.id);
      const wake = freed;
      freed = undefined;
      wake?.();
    };
    const slotFreed = () => new Promise<void>((resolve) => (freed = resolve));
    try {
      for (;;) {
        while (calls.size >= (concurrency as number)) await slotFreed();
        // a request already queued is taken without a promise; only waiting for one costs a turn
        let request = this.sinceYield < BATCH - 1 ? this.poll(stop) : NONE;
        if (request === NONE) request = await this.next(stop);
        else this.sinceYield++;
        if (request === undefined) break;
        const call = new Call(callsStarted++, request, this.name);
        calls.add(call);
        if (stop.aborted) call.abort(stop.reason);
        call.run(handler, done);
        this.releaseTaken();
      }
      while (calls.size > 0) await slotFreed();
    } finally {
      clearInterval(watch);
      stop.removeEventListener('abort', onStop);
      this.serving = false;
    }
  }

  /**
   * Releases the request taken last (its room in the queue, and the count of
   * requests received). It waits until the request is handed out: a handler
   * that answers at once has sent its reply by then, and the release is not on
   * the round trip's path. A corrupt queue is left to the next take to report.
   */
  private releaseTaken(): void {
    try {
      this.reader.finishRelease();
    } catch {
      // the next poll reads the same ring and fails with ERR_CORRUPT
    }
  }

  /** Aborts the calls whose client is gone; each client is looked at once. */
  private abortCallsOfGoneClients(calls: IdTable<Call<Req, Res>>): void {
    if (this.closing.signal.aborted) return;
    const gone = new Map<number, boolean>();
    for (const call of calls.values()) {
      if (call.aborted) continue;
      const { client } = call.request.envelope;
      let clientGone = gone.get(client);
      if (clientGone === undefined) gone.set(client, (clientGone = this.replies.clientGone(client)));
      if (clientGone) call.clientGaveUp(peerGone(`service '${this.name}': the client of request ${call.request.envelope.id} closed or died (its reply is dropped)`));
    }
  }

  /** Every request, as it comes, until the service closes. Answer each with reply or fail. */
  async *[Symbol.asyncIterator](): AsyncIterator<Request<Req, Res>> {
    this.startServing();
    try {
      for (;;) {
        const request = await this.next(this.closing.signal);
        if (request === undefined) return;
        this.releaseTaken();
        yield request;
      }
    } finally {
      this.serving = false;
    }
  }

  private startServing(): void {
    if (this.closing.signal.aborted) throw errorFromErrno('EBADF', { channel: this.name });
    if (this.serving) throw invalidArg(`service '${this.name}': this handle is already serving (one serve() or iterator at a time; open another worker for more)`);
    this.serving = true;
  }

  /** The next well-formed request, or undefined once stopped. Bad messages are skipped. */
  private async next(stop: AbortSignal): Promise<ServiceRequest<Req, Res> | undefined> {
    if (++this.sinceYield >= BATCH) {
      this.sinceYield = 0;
      await new Promise(setImmediate); // a queue that never empties must not starve timers and I/O
    }
    for (;;) {
      const polled = this.poll(stop);
      if (polled !== NONE) return polled;
      await letMicrotasksRun();
      let message: unknown;
      try {
        message = await this.queue.receive({ signal: stop });
      } catch (error) {
        if (this.skippable(error)) continue;
        return undefined;
      }
      const request = this.requestOf(message);
      if (request !== undefined) return request;
    }
  }

  /** The next well-formed request already in the queue; NONE when there is none now, undefined once stopped. */
  private poll(stop: AbortSignal): ServiceRequest<Req, Res> | undefined | typeof NONE {
    for (;;) {
      if (stop.aborted) return undefined;
      let message = this.held;
      this.held = undefined;
      try {
        if (message === undefined) message = this.queue.tryReceive();
      } catch (error) {
        if (this.skippable(error)) continue;
        return undefined;
      }
      if (message === undefined) return NONE;
      const request = this.requestOf(message);
      if (request !== undefined) return request;
    }
  }

  /** After a failed receive: true for a message no codec reads (skipped), false once
   * stopped (aborted, closed, ended); anything else is thrown. */
  private skippable(error: unknown): boolean {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_DECODE') return true;
    if (code === 'ABORT_ERR' || code === 'ERR_CLOSED' || code === 'ERR_ENDED') return false;
    throw error;
  }

  /** A message as a request to hand out, or undefined when it is none (skipped, or failed back to its client). */
  private requestOf(message: unknown): ServiceRequest<Req, Res> | undefined {
    const envelope = parseRequest(message);
    if (envelope === undefined) {
      debug('service %s: skipped a message that is not a request', this.name);
      return undefined;
    }
    if (envelope.deadline !== undefined && envelope.deadline <= monotonicMs()) {
      debug('service %s: skipped request %d: its client gave up on it while it waited', this.name, envelope.id);
      return undefined;
    }
    let value: Req;
    try {
      value = this.codec.fromWire(envelope.value) as Req;
    } catch (error) {
      this.send(envelope, failureMessage(envelope.id, error));
      return undefined;
    }
    return new ServiceRequest<Req, Res>(this, envelope, value);
  }

  /** @internal Sends a reply (or a failure) to the client that asked: for Request. */
  send(envelope: Envelope, message: unknown[]): void {
    if (this.closing.signal.aborted) return;
    this.replies.send(envelope.client, message);
  }

  /** @internal The reply message for a value; throws ERR_INVALID_ARG for a value the codec refuses. */
  replyFor(id: number, value: unknown): unknown[] {
    return replyMessage(id, this.codec.toWire(value));
  }

  /** Stops serving, and releases the queue and the reply channels. Replies sent after
   * this are dropped; a request taken but never handed out is failed with ERR_CLOSED. */
  close(): void {
    if (this.closing.signal.aborted) return;
    if (this.held !== undefined) {
      const envelope = parseRequest(this.held);
      this.held = undefined;
      if (envelope !== undefined) {
        try {
          this.replies.send(envelope.client, failureMessage(envelope.id, errorFromErrno('EBADF', { channel: this.name })));
        } catch {
          // the client is gone
        }
      }
    }
    this.closing.abort();
    forgetAtExit(this.atExit);
    this.releaseTaken();
    closeQueue(this.queue);
    this.replies.close();
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

/** Attempts at creating a queue that others keep removing, or taking over one that
 * others keep creating, before the last error stands. */
const CREATE_ATTEMPTS = 8;

/**
 * A new service's queue. The name may hold the queue of a service whose workers
 * all died or closed while clients kept it open: the new worker takes that one
 * over, so those clients' requests reach it (as they would an opening worker's).
 * Its capacity and permissions stay those it was made with.
 */
function createQueue(service: string, options: Omit<ServiceOptions, 'codec'>): Channel<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      // not removed with this handle: the last worker or client to close removes it (closeQueue)
      return Channel.create<unknown>(service, { ...options, mode: 'mpmc', unlinkOnClose: false });
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_CHANNEL_EXISTS' || attempt === CREATE_ATTEMPTS) throw error;
      const queue = workerlessQueue(service, options.backend, error);
      if (queue !== undefined) return queue;
    }
  }
}

/** The existing queue `service` when it is in use by others but has no live worker;
 * undefined if it is gone (to be created again). Otherwise throws: `exists`, or
 * ERR_CHANNEL_EXISTS saying that the service has workers. */
function workerlessQueue(service: string, backend: Backend | undefined, exists: unknown): Channel<unknown> | undefined {
  let queue: Channel<unknown>;
  try {
    // a service's queue is msgpack without records (docs/services.md); a raw channel is ERR_INCOMPATIBLE here
    queue = Channel.open<unknown>(service, { backend, timeout: 0, codec: 'msgpack' });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_CHANNEL_NOT_FOUND') return undefined;
    throw exists;
  }
  let workers: number;
  try {
    // a stale queue (nobody has it open) keeps the create error: its requests' clients are gone
    if (queue.mode !== 'mpmc' || queue.records || !queue[channelInternals]().ring.segment.inUse()) throw exists;
    workers = queue.stats().consumers;
  } catch (error) {
    queue.close();
    throw error;
  }
  if (workers === 0) return queue;
  queue.close();
  throw serviceExists(service, workers);
}

class ServiceRequest<Req, Res> implements Request<Req, Res> {
  private answered = false;
  constructor(
    private readonly service: Service<Req, Res>,
    readonly envelope: Envelope,
    readonly value: Req,
  ) {}

  /** Sends the reply. A value that cannot be sent (ERR_ENCODE, ERR_MESSAGE_TOO_LARGE)
   * fails the request instead, and the error is thrown here too. */
  reply(value: Res): void {
    this.answer();
    try {
      this.service.send(this.envelope, this.service.replyFor(this.envelope.id, value));
    } catch (error) {
      this.sendFailure(error);
      throw error;
    }
  }

  /** Fails the request: the client's promise rejects with ERR_REMOTE carrying this error. */
  fail(error: unknown): void {
    this.answer();
    this.sendFailure(error);
  }

  private sendFailure(error: unknown): void {
    try {
      this.service.send(this.envelope, failureMessage(this.envelope.id, error));
    } catch (failure) {
      debug('service %s: a failure could not be sent: %s', this.service.name, (failure as { code?: string }).code);
    }
  }

  private answer(): void {
    if (this.answered) throw invalidArg(`service '${this.service.name}': request ${this.envelope.id} was already answered (reply or fail once)`);
    this.answered = true;
  }
}

/**
 * One handler call in serve(), with a signal of its own: aborted when serving stops,
 * when the request's deadline passes, or when its client is gone. Once the client
 * gave up, the handler's result or error is dropped: nobody waits for it.
 */
class Call<Req, Res> {
  /** Made when the handler first reads its signal: most handlers never do, and an AbortController is dear next to the rest of a request. */
  private controller: AbortController | undefined;
  /** Set once aborted, with the reason the signal carries. */
  private abortedWith: { reason: unknown } | undefined;
  private dropped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Numbers the calls of one serve(). */
    readonly id: number,
    readonly request: ServiceRequest<Req, Res>,
    private readonly service: string,
  ) {}

  get aborted(): boolean {
    return this.abortedWith !== undefined;
  }

  /** Aborts the handler's signal (serving stopped): its answer is still sent. */
  abort(reason: unknown): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = { reason };
    this.controller?.abort(reason);
  }

  /** The client gave up on the request: the handler's signal aborts and its answer is dropped. */
  clientGaveUp(reason: unknown): void {
    this.dropped = true;
    this.abort(reason);
  }

  /** The handler's signal, made now if it was not yet. */
  signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  /** Runs the handler and answers with its result or its error; calls done once settled. */
  run(handler: Handler<Req, Res>, done: (call: Call<Req, Res>) => void): void {
    let result: Res | Promise<Res>;
    try {
      result = handler(this.request.value, new HandlerContext(this));
    } catch (error) {
      this.fail(error);
      return done(this);
    }
    if (typeof (result as Promise<Res>)?.then !== 'function') {
      this.reply(result as Res);
      return done(this);
    }
    const { deadline, id } = this.request.envelope;
    // only a handler still running can outlive the deadline: a synchronous one has answered already.
    // One further off than a timer can wait (a client's timeout cannot be) is no deadline.
    const remaining = deadline === undefined ? Infinity : Math.max(0, deadline - monotonicMs());
    if (remaining <= MAX_TIMER_MS)
      this.timer = setTimeout(
        () => this.clientGaveUp(timedOut(`service '${this.service}': request ${id} passed its client's timeout (its reply is dropped)`)),
        remaining,
      ).unref();
    (result as Promise<Res>).then(
      (value) => this.settle(() => this.reply(value), done),
      (error) => this.settle(() => this.fail(error), done),
    );
  }

  private settle(answer: () => void, done: (call: Call<Req, Res>) => void): void {
    clearTimeout(this.timer);
    answer();
    done(this);
  }

  private reply(value: Res): void {
    if (this.dropped) return;
    try {
      this.request.reply(value);
    } catch {
      // the client was sent the failure
    }
  }

  private fail(error: unknown): void {
    if (!this.dropped) this.request.fail(error);
  }
}

/** What a handler is given: `signal`, made when first read (a class: an object literal with a getter is slow to make). */
class HandlerContext {
  constructor(private readonly call: Call<unknown, unknown>) {}

  get signal(): AbortSignal {
    return this.call.signal();
  }
}
