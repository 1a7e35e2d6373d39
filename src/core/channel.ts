// The public Channel: a handle on one channel, with its roles (producer,
// consumer), the ways of sending and receiving, and its lifecycle. Options are
// checked in options.ts, the segment is made and found in segment.ts, the
// header read in header.ts; the data path is spsc.ts and mpsc.ts.
import type { NativeError, NativeSegment } from './binding';
import * as L from './layout';
import { CopyInto, RingView, makeCodec, type Codec, type Decoder } from './codec';
import {
  type ShmChanError,
  abortError,
  CorruptRing,
  corrupt,
  dataPathError,
  describe,
  errorFromErrno,
  fromNative,
  invalidArg,
  nativeCode,
  roleTaken,
  timedOut,
  tooManyConsumers,
  tooManyProducers,
} from './errors';
import { BroadcastReader, BroadcastRoom } from './broadcast';
import { closed, created, failed, opened, roleClaimed } from './diagnostics';
import { Releaser } from './fanout';
import { codecId, modeId, negotiateCodec, readHeader, type HeaderFields } from './header';
import { closeAtExit, forgetAtExit } from './exit';
import { channelInternals, type ChannelInternals } from './internals';
import { MpmcReader, consumedPlan } from './mpmc';
import { MpscReader, MpscWriter } from './mpsc';
import {
  connectSettings,
  createSettings,
  openSettings,
  openTimeout,
  unlinkSettings,
  waitOptions,
  type Backend,
  type CreateOptions,
  type From,
  type Mode,
  type Overflow,
  type OpenOptions,
  type OpenSettings,
  type WaitOptions,
} from './options';
import { COMMITTED, EMPTY, ENDED, FillFailed, RingMemory } from './ring';
import { connectSegment, createSegment, openSegment, remove, removalOf, unlinkName, type Removal } from './segment';
import { SpscReader, SpscWriter } from './spsc';
import { channelStats, type ChannelStats } from './stats';
import { SharedStructures } from './structures';
import type { SysvKey } from './sysv';
import { AGAIN, Announcements, SpinBudget, deadlineOf, sleepUntilReady, spinFor, waitAsync, waitSteps, waitSync, type WaitPlan } from './wait';
import { loadWord } from './words';

const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
const asyncDisposeSymbol: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');

const unlinkOnCollect = new FinalizationRegistry<Removal>(remove);

/** What send() answers when the message went in at once: one settled promise for
 * every such call, so that the common send allocates none. */
const SENT: Promise<void> = Promise.resolve();

/** The options of a call made without any: the common call reads none. */
const NO_OPTIONS: { timeout: undefined; signal: undefined } = Object.freeze({ timeout: undefined, signal: undefined });

/** What the iterator answers at the end of the stream. */
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * A handle on one channel: a shared-memory ring between processes on this host,
 * found by its name. Create it in one process and open it in others; the first
 * sending call takes the producer role, the first receiving call the consumer role.
 * Messages are `T` (msgpack), or Buffers for `codec: 'raw'`.
 */
export class Channel<T = unknown> {
  /** The channel's name, without the leading '/'. */
  readonly name: string;
  /** 'posix' (shm_open and a futex) or 'sysv' (shmget and a semaphore set). */
  readonly backend: Backend;
  /** System V: the key, as an unsigned 32-bit number (ipcs shows it in hex). */
  readonly key: number | undefined;
  /** 'spsc': one producer at a time; 'mpsc': up to 64. One consumer either way. */
  readonly mode: Mode;
  /** Ring bytes, from the channel's header. */
  readonly capacity: number;
  /** The largest encoded message the channel takes, in bytes. */
  readonly maxMessageSize: number;
  /** Whether messages are msgpackr records over the channel's shared structures. */
  readonly records: boolean;
  /** 'broadcast': what producers do when the slowest subscriber is a full lap behind. */
  readonly overflow: Overflow;
  /** 'broadcast': where this handle starts to read. */
  private readonly from: From;

  private segment: NativeSegment | undefined;
  private readonly ring: RingMemory;
  private readonly codec: Codec<T>;
  private readonly structures: SharedStructures | undefined;
  private readonly announcements: Announcements;
  private readonly spin: SpinBudget;
  private readonly removal: Removal | undefined;
  private readonly atExit: WeakRef<{ close(): void }>;
  private writer: SpscWriter | MpscWriter | undefined;
  /** The producer slot this handle holds, once it produces. */
  private slot = -1;
  private reader: SpscReader | MpscReader | MpmcReader | BroadcastReader | undefined;

  private constructor(
    name: string,
    segment: NativeSegment,
    fields: HeaderFields,
    codec: Codec<T>,
    spinMicros: number,
    unlinkOnClose: boolean,
    from: From,
  ) {
    this.name = name;
    this.overflow = fields.overflow;
    this.from = from;
    this.segment = segment;
    this.records = fields.codec === L.CODEC_MSGPACK_RECORDS;
    if (this.records) {
      this.structures = new SharedStructures(segment.buffer(), (slot, generation) => segment.claimantAlive(slot, generation));
      try {
        this.codec = makeCodec<T>('msgpack', this.structures);
      } catch (error) {
        // the codec reads the shared structure table here first: damage is the segment's
        throw error instanceof CorruptRing ? corrupt(name, error.message) : error;
      }
    } else {
      this.codec = codec;
    }
    this.spin = new SpinBudget(spinMicros);
    this.backend = fields.backend;
    this.key = this.backend === 'sysv' ? segment.ids().key : undefined;
    this.mode = fields.mode;
    this.capacity = fields.capacity;
    this.maxMessageSize = fields.maxMessageSize;
    this.ring = new RingMemory(segment, segment.buffer(), this.capacity, this.maxMessageSize);
    this.announcements = new Announcements(this.ring.i32);
    if (unlinkOnClose) {
      this.removal = removalOf(this.backend, name, segment);
      unlinkOnCollect.register(this, this.removal, this);
    }
    this.atExit = closeAtExit(this);
  }

  /**
   * Creates a channel; with `codec: 'raw'` its messages are Buffers.
   * @throws ShmChanError ERR_CHANNEL_EXISTS if the name is taken (a stale channel
   * is replaced: see `replaceStale`), ERR_INVALID_NAME, ERR_INVALID_ARG, ERR_PERMISSION, ERR_SYSTEM.
   */
  static create(name: string, options: CreateOptions<Buffer> & { codec: 'raw' }): Channel<Buffer>;
  /**
   * Creates a channel whose messages are `T` (msgpack by default).
   * @throws ShmChanError ERR_CHANNEL_EXISTS if the name is taken (a stale channel
   * is replaced: see `replaceStale`), ERR_INVALID_NAME, ERR_INVALID_ARG, ERR_PERMISSION, ERR_SYSTEM.
   */
  static create<T = unknown>(name: string, options?: CreateOptions<T>): Channel<T>;
  static create<T = unknown>(name: string, options?: CreateOptions<T>): Channel<T> {
    const settings = createSettings<T>(name, options);
    const segment = createSegment(settings, {
      capacity: settings.capacity,
      mode: modeId(settings.mode),
      maxMessageSize: settings.maxMessageSize,
      codec: codecId(settings.codec.kind, settings.records),
      permissions: settings.permissions,
      maxConsumers: settings.maxConsumers,
      overflow: settings.overflow === 'overwrite' ? L.OVERFLOW_OVERWRITE : L.OVERFLOW_BLOCK,
    }, settings.replaceStale);
    const { channel } = settings;
    try {
      const fields = readHeader(channel, segment.buffer());
      return created(new Channel<T>(channel, segment, fields, settings.codec, settings.spinMicros, settings.unlinkOnClose, settings.from));
    } catch (error) {
      const removal = removalOf(settings.key === undefined ? 'posix' : 'sysv', channel, segment);
      segment.close();
      remove(removal);
      throw error;
    }
  }

  /**
   * Opens an existing raw channel: its messages are Buffers.
   * @throws ShmChanError ERR_CHANNEL_NOT_FOUND, ERR_INCOMPATIBLE (not a raw channel), ERR_TIMEOUT, ERR_PERMISSION.
   */
  static open(name: string, options: OpenOptions<Buffer> & { codec: 'raw' }): Channel<Buffer>;
  /**
   * Opens an existing channel; capacity, mode and codec come from its header.
   * Blocks the calling thread while a creator finishes initialising it (Channel.connect does not).
   * @throws ShmChanError ERR_CHANNEL_NOT_FOUND, ERR_INCOMPATIBLE (another codec than
   * `options.codec`), ERR_TIMEOUT, ERR_PERMISSION, ERR_CORRUPT.
   */
  static open<T = unknown>(name: string, options?: OpenOptions<T>): Channel<T>;
  static open<T = unknown>(name: string, options?: OpenOptions<T>): Channel<T> {
    const settings = openSettings<T>(name, options);
    return opened(Channel.opened(settings, openSegment(settings, openTimeout(settings), settings.timeout !== undefined)), 'open');
  }

  /** Channel.connect for a raw channel: its messages are Buffers. */
  static connect(name: string, options: OpenOptions<Buffer> & { codec: 'raw'; signal?: AbortSignal }): Promise<Channel<Buffer>>;
  /**
   * Opens a channel once it exists and is initialised, without blocking the event
   * loop: as long as it takes, unless `timeout` (ERR_TIMEOUT) or `signal`
   * (AbortError) stops it.
   */
  static connect<T = unknown>(name: string, options?: OpenOptions<T> & { signal?: AbortSignal }): Promise<Channel<T>>;
  static async connect<T = unknown>(name: string, options?: OpenOptions<T> & { signal?: AbortSignal }): Promise<Channel<T>> {
    const settings = connectSettings<T>(name, options);
    return opened(Channel.opened(settings, await connectSegment(settings, settings.timeout, settings.signal)), 'connect');
  }

  /** A handle on a segment just opened; the segment is closed if that fails. */
  private static opened<T>(settings: OpenSettings<T>, segment: NativeSegment): Channel<T> {
    const { channel } = settings;
    try {
      const fields = readHeader(channel, segment.buffer());
      const codec = negotiateCodec<T>(channel, fields.codec, settings.codec);
      return new Channel<T>(channel, segment, fields, codec, settings.spinMicros, settings.unlinkOnClose, settings.from);
    } catch (error) {
      segment.close();
      throw error;
    }
  }

  /** Removes a channel's name. Open handles keep working (a System V channel's
   * blocking calls excepted: its semaphore set goes at once); true if it existed. */
  static unlink(name: string, options?: { backend?: Backend; key?: SysvKey }): boolean {
    return unlinkName(unlinkSettings(name, options));
  }

  /** Whether close() was called on this handle. */
  get closed(): boolean {
    return this.segment === undefined;
  }

  // ---- producing ----

  /**
   * Sends `value` if the ring has room now, and never waits. The first sending
   * call takes the producer role (ERR_ROLE_TAKEN, ERR_TOO_MANY_PRODUCERS).
   * @returns false when the ring is full: nothing was sent.
   * @throws ShmChanError ERR_MESSAGE_TOO_LARGE, ERR_ENCODE, ERR_ENDED, ERR_CLOSED.
   */
  trySend(value: T): boolean {
    return this.attemptSend(value) === COMMITTED;
  }

  /**
   * Sends `value`, waiting for room without blocking the event loop. Resolves once
   * the message is in the ring; it is then delivered exactly once.
   * @param options.timeout milliseconds to wait for room (ERR_TIMEOUT); none: as long as it takes.
   * @param options.signal aborts the wait (AbortError).
   * @throws ShmChanError ERR_PEER_GONE when the consumer died while the ring is full,
   * and what trySend throws.
   */
  send(value: T, options?: WaitOptions): Promise<void> {
    try {
      const { signal, timeout } = options === undefined ? NO_OPTIONS : waitOptions(options);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      const first = this.attemptSend(value);
      if (first === COMMITTED) return SENT;
      return waitAsync(waitSteps(this.sendPlan(this.retryBytes(Buffer.from(first))), this.announcements, timeout), this.live(), signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** send(), blocking the calling thread while it waits (for a worker or a CLI). */
  sendSync(value: T, options?: { timeout?: number }): void {
    const { timeout } = waitOptions(options);
    const first = this.attemptSend(value);
    if (first !== COMMITTED) waitSync(waitSteps(this.sendPlan(this.retryBytes(Buffer.from(first))), this.announcements, timeout), this.live());
  }

  /** Ends the stream: the consumer gets everything sent before, then the end.
   * A producing call: it takes the producer role (a slot in mpsc). Idempotent. */
  end(): void {
    const segment = this.live();
    if (Atomics.load(this.ring.i32, L.OFF_ENDED >> 2) !== 0) return;
    this.producer();
    segment.end();
  }

  /** One try at sending: COMMITTED, or the encoded bytes, valid only until the
   * next send (a caller that waits to retry copies them first: Buffer.from). */
  private attemptSend(value: T): typeof COMMITTED | Uint8Array {
    this.live();
    if (value === undefined)
      throw invalidArg(`channel '${this.name}': cannot send undefined (it is what tryReceive() answers when empty); send null instead`);
    this.codec.check?.(value); // before the role is taken: a bad argument changes nothing
    this.checkNotEnded();
    const writer = this.producer();
    let result: typeof COMMITTED | Uint8Array;
    this.enterSend();
    try {
      result = writer.trySendValue(this.codec, value);
    } catch (error) {
      throw this.dataPathError(error);
    } finally {
      this.sending = false;
    }
    if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader(); // truncated while we wrote
    return result;
  }

  /** True while this handle encodes or fills a message: in spsc mode it may be
   * writing in place at the tail, where a nested send would commit first. */
  private sending = false;

  /** Refuses a send made from inside this handle's own send (a getter, toJSON or
   * fill that sends on the same channel); sends on other channels are fine. */
  private enterSend(): void {
    if (this.sending)
      throw invalidArg(`channel '${this.name}': a send on this channel was made while it was encoding or filling a message for it (from a getter, toJSON or fill); send after that call returns`);
    this.sending = true;
  }

  /** Waiting for room: `send` is one more try, true once the message is in. */
  private sendPlan(send: () => boolean): WaitPlan<undefined> {
    return {
      which: L.WAIT_SPACE,
      spin: this.spin,
      attempt: () => (send() ? undefined : AGAIN),
      check: () => {
        const segment = this.live();
        this.checkNotEnded();
        if (segment.consumerGone()) throw failed(this, errorFromErrno('EPIPE', { channel: this.name }));
      },
      onTimeout: () => timedOut(`channel '${this.name}': no room for the message before the timeout (the consumer is not keeping up)`),
      onSleepFailure: (rc) => this.sleepError(rc),
    };
  }

  /** Tries to send bytes that did not fit on the first try (our own copy of them). */
  private retryBytes(pending: Uint8Array): () => boolean {
    const writer = this.writer!;
    return () => {
      let sent: boolean;
      try {
        sent = writer.trySendBytes(pending);
      } catch (error) {
        throw this.dataPathError(error);
      }
      if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader();
      return sent;
    };
  }

  // ---- zero copy (raw channels) ----

  /**
   * Sends a message of `byteLength` bytes written in place: calls `fill` with a
   * Buffer over exactly those bytes inside the ring, and commits the message when
   * `fill` returns. The Buffer's bytes are not cleared first, and it must not be
   * used after `fill` returns. If `fill` throws, nothing is committed (the space is
   * given back) and the error is thrown. Only 'raw' channels. Like trySend, the
   * first call takes the producer role.
   * @returns false when the ring has no room now: `fill` was not called.
   * @throws ShmChanError ERR_INVALID_ARG (not a raw channel, a bad byteLength or
   * fill), ERR_MESSAGE_TOO_LARGE, ERR_ENDED, ERR_CLOSED; or what `fill` threw.
   */
  trySendWith(byteLength: number, fill: (target: Buffer) => void): boolean {
    this.checkFill(byteLength, fill);
    return this.attemptFill(byteLength, fill);
  }

  /**
   * trySendWith(), waiting for room as send() does; `fill` is called once, when
   * there is room.
   * @param options.timeout milliseconds to wait for room (ERR_TIMEOUT); none: as long as it takes.
   * @param options.signal aborts the wait (AbortError).
   * @throws what send() and trySendWith throw.
   */
  sendWith(byteLength: number, fill: (target: Buffer) => void, options?: WaitOptions): Promise<void> {
    try {
      this.checkFill(byteLength, fill);
      const { signal, timeout } = waitOptions(options);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      if (this.attemptFill(byteLength, fill)) return SENT;
      const plan = this.sendPlan(() => this.attemptFill(byteLength, fill));
      return waitAsync(waitSteps(plan, this.announcements, timeout), this.live(), signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private checkFill(byteLength: number, fill: unknown): void {
    this.live();
    this.rawOnly('sendWith', 'send()');
    if (!Number.isSafeInteger(byteLength) || byteLength < 0)
      throw invalidArg(`channel '${this.name}': byteLength must be an integer from 0 to maxMessageSize (${this.maxMessageSize}), got ${describe(byteLength)}`);
    if (typeof fill !== 'function') throw invalidArg(`channel '${this.name}': fill must be a function (target: Buffer) => void, got ${describe(fill)}`);
  }

  /** One try at a filled send: true once committed. */
  private attemptFill(byteLength: number, fill: (target: Buffer) => void): boolean {
    this.live();
    this.checkNotEnded();
    const writer = this.producer();
    let sent: boolean;
    this.enterSend();
    try {
      sent = writer.trySendFilled(byteLength, fill);
    } catch (error) {
      if (error instanceof FillFailed) throw error.error;
      throw this.dataPathError(error);
    } finally {
      this.sending = false;
    }
    this.live(); // fill may have closed this handle, or the segment was truncated meanwhile
    return sent;
  }

  /** ERR_INVALID_ARG unless this is a raw channel, naming what to use instead. */
  private rawOnly(method: string, instead: string): void {
    if (this.codec.kind !== 'raw')
      throw invalidArg(`channel '${this.name}' uses the '${this.codec.kind}' codec; ${method} works on the bytes of channels made with codec 'raw': use codec 'raw', or ${instead}`);
  }

  private producer(): SpscWriter | MpscWriter {
    const segment = this.live();
    if (this.writer !== undefined) return this.writer;
    let slot: number;
    try {
      slot = segment.claimProducer();
    } catch (error) {
      if (nativeCode(error) === 'EUSERS') throw tooManyProducers(this.name, L.MAX_PRODUCERS);
      throw this.roleError(error, 'producer', 'one producer at a time in spsc mode');
    }
    const marker = segment.claimMarker();
    this.structures?.producerClaimed(marker);
    if (this.mode === 'mpsc') {
      this.writer = new MpscWriter(this.ring, slot, marker);
    } else if (this.mode === 'mpmc' || this.mode === 'broadcast') {
      const releaser = new Releaser(this.ring, () => marker);
      const room =
        this.mode === 'mpmc'
          ? () => releaser.release(consumedPlan, true)
          : ((broadcast) => (need: number) => broadcast.make(need))(new BroadcastRoom(this.ring, releaser, this.overflow === 'overwrite'));
      this.writer = new MpscWriter(this.ring, slot, marker, room);
    } else {
      let tail: number;
      try {
        tail = segment.recoverTail();
      } catch (error) {
        throw fromNative(error, { channel: this.name });
      }
      this.writer = new SpscWriter(this.ring, slot, tail);
    }
    this.slot = slot;
    roleClaimed(this, 'producer', false);
    return this.writer;
  }

  private checkNotEnded(): void {
    if (loadWord(this.ring.i32, L.OFF_ENDED >> 2) !== 0) throw this.endedError();
  }

  // ---- consuming ----

  /**
   * The next message if there is one, without waiting. The first receiving call
   * takes the consumer role (ERR_ROLE_TAKEN).
   * @returns undefined when the channel is empty.
   * @throws ShmChanError ERR_ENDED after the end of the stream, ERR_DECODE for a
   * message that fails to decode (it is skipped), ERR_CORRUPT, ERR_CLOSED.
   */
  tryReceive(): T | undefined {
    return this.tryReceiveWith(this.codec);
  }

  /**
   * The next message, waiting for one without blocking the event loop.
   * @param options.timeout milliseconds to wait (ERR_TIMEOUT); none: as long as it takes.
   * @param options.signal aborts the wait (AbortError).
   * @throws ShmChanError what tryReceive throws.
   */
  receive(options?: WaitOptions): Promise<T> {
    return this.receiveWith(this.codec, options);
  }

  /** receive(), blocking the calling thread while it waits (for a worker or a CLI). */
  receiveSync(options?: { timeout?: number }): T {
    return this.receiveSyncWith(this.codec, options);
  }

  // ---- receiving into a buffer of the caller's (raw channels) ----

  /**
   * Copies the next message into target and answers its length, or undefined when
   * the channel is empty: receiving that allocates nothing. A message longer than
   * target stays in the channel (ERR_MESSAGE_TOO_LARGE); a target of
   * maxMessageSize bytes always fits. Only raw channels, whose messages are bytes.
   */
  tryReceiveInto(target: Uint8Array): number | undefined {
    return this.tryReceiveWith(this.copyInto(target));
  }

  /** receive(), into target: see tryReceiveInto. */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    try {
      return this.receiveWith(this.copyInto(target), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** receiveSync(), into target: see tryReceiveInto. */
  receiveIntoSync(target: Uint8Array, options?: { timeout?: number }): number {
    return this.receiveSyncWith(this.copyInto(target), options);
  }

  // ---- zero copy receiving (raw channels) ----

  /**
   * The next message as a Buffer over its bytes inside the ring, with no copy, or
   * undefined when the channel is empty. The view stays valid, and its space
   * unavailable to producers, until this handle's next receiving call or close();
   * the message is consumed then (a consumer that dies holding a view leaves the
   * message to the next consumer). Only 'raw' channels.
   * @throws what tryReceive throws, and ERR_INVALID_ARG on a channel that is not raw.
   */
  tryReceiveView(): Buffer | undefined {
    return this.tryReceiveWith(this.viewDecoder());
  }

  /** receive(), as a view into the ring: see tryReceiveView. */
  receiveView(options?: WaitOptions): Promise<Buffer> {
    try {
      return this.receiveWith(this.viewDecoder(), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private ringView: RingView | undefined;

  private viewDecoder(): RingView {
    this.live();
    this.rawOnly('receiveView', 'receive()');
    if (this.overflow === 'overwrite')
      throw invalidArg(`channel '${this.name}' is an 'overwrite' broadcast channel, where producers may write over a message while it is read: a view into the ring could change under you; use receive() or receiveInto()`);
    return (this.ringView ??= new RingView());
  }

  // ---- the three ways of receiving, for any decoder ----

  private tryReceiveWith<V>(decoder: Decoder<V>): V | undefined {
    const value = this.attemptReceive(decoder);
    if (value === EMPTY) return undefined;
    if (value === ENDED) throw this.endedError();
    return value;
  }

  private receiveWith<V>(decoder: Decoder<V>, options: WaitOptions | undefined): Promise<V> {
    try {
      const { signal, timeout } = options === undefined ? NO_OPTIONS : waitOptions(options);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      return this.nextMessage(decoder, timeout, signal, this.valueNotEnded as (value: V | typeof ENDED) => V);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private receiveSyncWith<V>(decoder: Decoder<V>, options: { timeout?: number } | undefined): V {
    const { timeout } = waitOptions(options);
    let value = this.attemptReceive(decoder);
    if (value === EMPTY) value = waitSync(waitSteps(this.receivePlan(decoder), this.announcements, timeout), this.live());
    if (value === ENDED) throw this.endedError();
    return value;
  }

  private intoDecoder: CopyInto | undefined;

  private copyInto(target: Uint8Array): CopyInto {
    if (!(target instanceof Uint8Array)) throw invalidArg(`channel '${this.name}': receiveInto needs a Uint8Array or Buffer to copy into, got ${describe(target)}`);
    if (this.codec.kind !== 'raw') {
      this.live(); // a closed handle says so first, whatever its codec
      throw invalidArg(`channel '${this.name}' uses the '${this.codec.kind}' codec; receiveInto copies the bytes of raw channels: use receive()`);
    }
    const decoder = (this.intoDecoder ??= new CopyInto());
    decoder.target = target;
    return decoder;
  }

  /**
   * Every message, as they come; finishes at the end of the stream. A message
   * that is waiting is answered without waiting for anything else.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    let finished = false;
    const settle = (value: T | typeof ENDED): IteratorResult<T> => {
      if (value !== ENDED) return { value, done: false };
      finished = true;
      return DONE;
    };
    const fail = (error: unknown): never => {
      finished = true;
      throw error;
    };
    const iterator: AsyncIterableIterator<T> = {
      next: (): Promise<IteratorResult<T>> => {
        if (finished) return Promise.resolve(DONE);
        try {
          return this.nextMessage(this.codec, undefined, undefined, settle, fail);
        } catch (error) {
          finished = true;
          return Promise.reject(error);
        }
      },
      return: (): Promise<IteratorResult<T>> => {
        finished = true;
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  private attemptReceive<V>(decoder: Decoder<V>): V | typeof EMPTY | typeof ENDED {
    let value: V | typeof EMPTY | typeof ENDED;
    try {
      value = this.consumer().tryRead(decoder);
    } catch (error) {
      throw this.dataPathError(error);
    }
    // a value read while the segment was truncated may be half zeros: never return it
    if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader();
    return value;
  }

  /**
   * The next message (or ENDED) as `settle` makes it, for receive() and the
   * iterator: a try, the spin (spinFor), then a sleep. The sleep's generator and
   * promise are made only when the spin runs out: most waits of a busy channel end
   * in it, and making them costs more than the rest of such a wait. What settle
   * throws on the way there is thrown; `fail` handles a failed sleep.
   */
  private nextMessage<V, R>(
    decoder: Decoder<V>,
    timeout: number | undefined,
    signal: AbortSignal | undefined,
    settle: (value: V | typeof ENDED) => R,
    fail?: (error: unknown) => never,
  ): Promise<R> {
    const first = this.attemptReceive(decoder);
    if (first !== EMPTY) return Promise.resolve(settle(first));
    const plan = this.receivePlan(decoder);
    const start = performance.now();
    const spun = spinFor(plan, start, timeout);
    if (spun !== AGAIN) return Promise.resolve(settle(spun));
    return waitAsync(sleepUntilReady(plan, this.announcements, deadlineOf(start, timeout)), this.live(), signal).then(settle, fail);
  }

  /** receive()'s settle: the message, or ERR_ENDED at the end of the stream. */
  private readonly valueNotEnded = (value: unknown): unknown => {
    if (value === ENDED) throw this.endedError();
    return value;
  };

  /** Plans of waits for a message, one per decoder (a handle has at most three). */
  private readonly receivePlans = new Map<Decoder<unknown>, WaitPlan<unknown>>();

  private receivePlan<V>(decoder: Decoder<V>): WaitPlan<V | typeof ENDED> {
    let plan = this.receivePlans.get(decoder) as WaitPlan<V | typeof ENDED> | undefined;
    if (plan === undefined) this.receivePlans.set(decoder, (plan = this.newReceivePlan(decoder)));
    return plan;
  }

  private newReceivePlan<V>(decoder: Decoder<V>): WaitPlan<V | typeof ENDED> {
    return {
      which: L.WAIT_DATA,
      spin: this.spin,
      attempt: () => {
        const value = this.attemptReceive(decoder);
        return value === EMPTY ? AGAIN : value;
      },
      check: () => {
        this.live();
        if (this.reader instanceof MpscReader) this.reader.beforeSleep();
      },
      sliceMs: () => (this.reader !== undefined && !(this.reader instanceof SpscReader) && this.reader.waitingOnClaim ? 2 : undefined),
      onTimeout: () => timedOut(`channel '${this.name}': no message arrived before the timeout`),
      onSleepFailure: (rc) => this.sleepError(rc),
    };
  }

  /** A sleep that cannot continue, e.g. a System V semaphore set removed with ipcrm,
   * or no thread to sleep on (pthread_create, which the binding names). */
  private sleepError(failure: NativeError): unknown {
    return failed(this, fromNative(failure, { channel: this.name, syscall: failure.syscall ?? (this.backend === 'sysv' ? 'semtimedop' : 'futex') }));
  }

  private endedError(): ShmChanError {
    return errorFromErrno('ESHUTDOWN', { channel: this.name });
  }

  private consumer(): SpscReader | MpscReader | MpmcReader | BroadcastReader {
    const segment = this.live();
    if (this.reader !== undefined) return this.reader;
    if (this.mode === 'mpmc' || this.mode === 'broadcast') return (this.reader = this.fanoutConsumer(segment));
    const takingOver = segment.consumerGone();
    try {
      segment.claimConsumer();
    } catch (error) {
      throw this.roleError(error, 'consumer', 'one consumer at a time');
    }
    this.reader = this.mode === 'mpsc' ? new MpscReader(this.ring) : new SpscReader(this.ring);
    roleClaimed(this, 'consumer', takingOver);
    return this.reader;
  }

  /** A consumer slot of an 'mpmc' or 'broadcast' channel, and its reader. */
  private fanoutConsumer(segment: NativeSegment): MpmcReader | BroadcastReader {
    let slot: number;
    try {
      slot = segment.claimConsumer();
    } catch (error) {
      if (nativeCode(error) === 'EUSERS') throw tooManyConsumers(this.name, Atomics.load(this.ring.i32, L.OFF_MAX_CONSUMERS >> 2));
      throw fromNative(error, { channel: this.name });
    }
    try {
      if (this.mode === 'mpmc') return new MpmcReader(this.ring, slot);
      return new BroadcastReader(this.ring, slot, this.from, this.overflow === 'overwrite');
    } catch (error) {
      throw this.dataPathError(error);
    }
  }

  // ---- internal: for features built on the ring (see internals.ts) ----

  [channelInternals](): ChannelInternals {
    return {
      name: this.name,
      mode: this.mode,
      records: this.records,
      ring: this.ring,
      consumer: () => this.consumer(),
      producer: () => {
        this.producer();
        return this.slot;
      },
      live: () => void this.live(),
      error: (error) => this.dataPathError(error),
      waitUntil: (ready, signal) => {
        if (signal?.aborted) return Promise.reject(abortError(signal));
        const plan: WaitPlan<undefined> = {
          ...this.receivePlan(this.codec),
          attempt: () => {
            try {
              return ready() ? undefined : AGAIN;
            } catch (error) {
              throw this.dataPathError(error);
            }
          },
        };
        return waitAsync(waitSteps(plan, this.announcements, undefined), this.live(), signal);
      },
    };
  }

  // ---- lifecycle ----

  /** The channel's counters, and who is attached (pids are null when none). */
  stats(): ChannelStats {
    return channelStats(this.live().stats(), this.reader instanceof BroadcastReader ? this.reader.messagesLost : 0);
  }

  /** Releases this handle's roles and mapping; the creator also removes the name
   * (unless unlinkOnClose is false). Pending waits reject with ERR_CLOSED. */
  close(): void {
    const segment = this.segment;
    if (segment === undefined) return;
    this.releaseView();
    this.segment = undefined;
    segment.cancelWait(L.WAIT_DATA);
    segment.cancelWait(L.WAIT_SPACE);
    this.announcements.withdrawAll();
    segment.close();
    unlinkOnCollect.unregister(this);
    forgetAtExit(this.atExit);
    if (this.removal !== undefined) remove(this.removal);
    closed(this);
  }

  /** Consumes the message whose view this handle holds, if any (see tryReceiveView). */
  private releaseView(): void {
    if (this.reader === undefined || this.ring.i32[0] !== L.MAGIC) return;
    try {
      this.reader.releaseHeld();
    } catch {
      // a corrupt ring: close() goes on; the next consumer finds the corruption
    }
  }

  /** Pending waits (send, receive, the iterator) keep the process alive: the default. */
  ref(): this {
    this.segment?.setRef(true);
    return this;
  }

  /** Pending waits no longer keep the process alive, so a program whose only work
   * is waiting on this channel can end. */
  unref(): this {
    this.segment?.setRef(false);
    return this;
  }

  /** close(), for `using`. */
  [disposeSymbol](): void {
    this.close();
  }

  /** close(), for `await using`. */
  async [asyncDisposeSymbol](): Promise<void> {
    this.close();
  }

  /** The segment of an open handle whose header still holds the magic. The magic
   * never changes in a healthy channel; it reads as 0 after another process
   * truncated the segment (see native/src/guard.c) or overwrote it. */
  private live(): NativeSegment {
    if (this.segment === undefined) throw errorFromErrno('EBADF', { channel: this.name });
    if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader();
    return this.segment;
  }

  private corruptHeader(): ShmChanError {
    return failed(this, corrupt(
      this.name,
      "its header no longer holds shmchan's magic (another process overwrote or truncated the segment)",
    ));
  }

  private roleError(error: unknown, role: string, rule: string): unknown {
    if (nativeCode(error) !== 'EBUSY') return failed(this, fromNative(error, { channel: this.name }));
    const holder = role === 'consumer' ? this.stats().consumerPid : null;
    const who = holder === null ? 'another live handle' : holder === process.pid ? 'another handle in this process' : `process ${holder}`;
    return failed(this, roleTaken(this.name, role, who, rule));
  }

  /** A failure inside the data path, as the ShmChanError that names this channel. */
  private dataPathError(error: unknown): ShmChanError {
    return failed(this, dataPathError(error, this.name, this.maxMessageSize));
  }
}
