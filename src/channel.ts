// The public Channel: options, roles, lifecycle and errors around the ring.
import { statSync } from 'node:fs';
import { layout as L, native, type NativeSegment } from './binding';
import { CopyInto, makeCodec, describe, type Codec, type CodecKind, type CodecOption, type Decoder } from './codec';
import { ShmChanError, abortError, errno, errorFromErrno, errnoName, invalidArg } from './errors';
import {
  COMMITTED,
  CorruptRing,
  DecodeFailure,
  EMPTY,
  ENDED,
  LeaveUnread,
  MessageTooLarge,
  RingMemory,
  SpscReader,
  SpscWriter,
} from './ring';
import { MpscReader, MpscWriter, StreamEnded } from './mpsc';
import { SharedStructures } from './structures';
import { hexKey, keyTakenError, rejectKey, sysvKey, type SysvKey } from './sysv';
import { AGAIN, Announcements, SpinBudget, sleepThread, waitAsync, waitSteps, waitSync, type WaitPlan } from './wait';
import { RelayConsumer, RelayProducer, relayConsumer, relayProducer, type RelayHooks } from './relay';
import { loadWord } from './words';

export type Backend = 'posix' | 'sysv';
export type Mode = 'spsc' | 'mpsc';

export interface CreateOptions<T = unknown> {
  /** Ring bytes: rounded up to a power of two, at least 4 KiB, at most 1 GiB. Default 1 MiB. */
  capacity?: number;
  mode?: Mode;
  backend?: Backend;
  /** System V only: the key, as a number or the { path, projectId } given to ftok.
   * Default: derived from the name (see the README). */
  key?: SysvKey;
  /** File mode bits of the segment. Default 0o600. */
  permissions?: number;
  codec?: CodecOption<T>;
  /** Largest encoded message accepted. Default a quarter of the capacity. */
  maxMessageSize?: number;
  /** Remove the channel's name when this handle closes. Default true for the creator. */
  unlinkOnClose?: boolean;
  /** How long a waiting call spins before it sleeps, in microseconds. Default 50. */
  spinMicros?: number;
  /** msgpack only: encode objects as msgpackr records whose key lists are kept once,
   * in the segment, instead of in every message. Faster and smaller, but the bytes
   * are no longer plain MessagePack (see the README). Default false. */
  records?: boolean;
}

export interface OpenOptions<T = unknown> {
  backend?: Backend;
  /** System V only: the key the channel was created with, if it was given one. */
  key?: SysvKey;
  codec?: CodecOption<T>;
  /** Milliseconds to wait for a creator that is still initialising the channel (default
   * 1000). Given explicitly, it also waits that long for the channel to appear. */
  timeout?: number;
  unlinkOnClose?: boolean;
  spinMicros?: number;
}

export interface WaitOptions {
  timeout?: number;
  signal?: AbortSignal;
}

export interface ChannelStats {
  capacity: number;
  used: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  producers: number;
  consumerPid: number | null;
  creatorPid: number | null;
  ended: boolean;
}

const DEFAULT_CAPACITY = 1 << 20;
const DEFAULT_OPEN_TIMEOUT = 1000;
const DEFAULT_SPIN_MICROS = 50;

const codecIds: Record<CodecKind, number> = { raw: L.CODEC_RAW, msgpack: L.CODEC_MSGPACK, custom: L.CODEC_CUSTOM };
const codecNames = ['raw', 'msgpack', 'custom', 'msgpack'] as const; // 3: msgpack with records
const disposeSymbol: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

/** Names are stored without the leading '/'. */
export function normalizeName(name: unknown): string {
  // a NUL would end the name early in C: 'a\0b' must not become channel 'a'
  if (typeof name !== 'string' || name.includes('\0') || native.checkName(name) !== 0)
    throw new ShmChanError(
      'ERR_INVALID_NAME',
      `invalid channel name ${describe(name)}: use 1 to ${L.NAME_MAX} of A-Z a-z 0-9 . _ - (optionally after one leading '/')`,
    );
  return name.startsWith('/') ? name.slice(1) : name;
}

function checkBackend(backend: unknown): Backend {
  if (backend === undefined || backend === 'posix') return 'posix';
  if (backend === 'sysv') return 'sysv';
  throw invalidArg(`backend must be 'posix' or 'sysv', got ${describe(backend)}`);
}

function checkOptions(options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArg(`options must be an object, got ${describe(options)}`);
  return options as Record<string, unknown>;
}

function integerOption(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw invalidArg(`${key} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  return value;
}

function booleanOption(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArg(`${key} must be a boolean, got ${describe(value)}`);
  return value;
}

/** The options of a waiting call: undefined or an object (a bare number there
 * would otherwise be ignored, and the call would wait for ever). */
function waitOptionsOf(options: unknown): { timeout: number | undefined; signal: AbortSignal | undefined } {
  const o = checkOptions(options);
  return { timeout: timeoutOf(o), signal: signalOf(o) };
}

function timeoutOf(options: { timeout?: unknown } | undefined): number | undefined {
  const timeout = options?.timeout;
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0)
    throw invalidArg(`timeout must be a number of milliseconds >= 0, got ${describe(timeout)}`);
  return timeout;
}

function signalOf(options: { signal?: unknown } | undefined): AbortSignal | undefined {
  const signal = options?.signal;
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArg(`signal must be an AbortSignal, got ${describe(signal)}`);
  return signal;
}

function roundCapacity(requested: number): number {
  let capacity = L.MIN_CAPACITY;
  while (capacity < requested) capacity *= 2;
  return capacity;
}

/** The inode behind a POSIX name, so unlinkOnClose never removes a channel recreated under it. */
function inodeOf(name: string): number | undefined {
  try {
    return statSync(`/dev/shm/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** The header fields a handle relies on, read once and checked: another process
 * may change them at any time, so they are never read again. */
interface HeaderFields {
  mode: Mode;
  capacity: number;
  maxMessageSize: number;
  codec: number;
}

function readHeader(channel: string, buffer: ArrayBuffer): HeaderFields {
  const header = new Uint32Array(buffer, 0, L.HEADER_SIZE >> 2);
  // The mapping is exactly header + ring: the native side checked the header's
  // capacity when it mapped the segment, and sized the mapping by it.
  const capacity = buffer.byteLength - L.HEADER_SIZE;
  const mode = header[L.OFF_MODE >> 2];
  const maxMessageSize = header[L.OFF_MAX_MESSAGE >> 2];
  const codec = header[L.OFF_CODEC >> 2];
  if (
    (mode !== L.MODE_SPSC && mode !== L.MODE_MPSC) ||
    maxMessageSize < 1 ||
    maxMessageSize > native.maxMessageLimit(capacity) ||
    codec > L.CODEC_MSGPACK_RECORDS
  )
    throw new ShmChanError('ERR_CORRUPT', `channel '${channel}' is corrupt: its header changed while it was being opened; remove and recreate it`);
  return { mode: mode === L.MODE_MPSC ? 'mpsc' : 'spsc', capacity, maxMessageSize, codec };
}

/** The System V key to use, or undefined for POSIX (where a key is refused). */
function keyFor(backend: Backend, option: unknown, channel: string): number | undefined {
  if (backend === 'sysv') return sysvKey(option, channel);
  rejectKey(option);
  return undefined;
}

/** What a handle with unlinkOnClose removes: a POSIX name if it still names the
 * same file, or a System V segment and semaphore set by id. Either way a channel
 * recreated under the name since is left alone. */
type Removal =
  | { backend: 'posix'; name: string; inode: number | undefined }
  | { backend: 'sysv'; shmid: number; semid: number };

function remove(removal: Removal): void {
  if (removal.backend === 'sysv') native.removeSysv(removal.shmid, removal.semid);
  else if (removal.inode !== undefined && inodeOf(removal.name) === removal.inode) native.unlinkPosix(removal.name);
}

const unlinkOnCollect = new FinalizationRegistry<Removal>(remove);

export class Channel<T = unknown> {
  readonly name: string;
  readonly backend: Backend;
  /** System V: the key, as an unsigned 32-bit number (ipcs shows it in hex). */
  readonly key: number | undefined;
  readonly mode: Mode;
  readonly capacity: number;
  readonly maxMessageSize: number;
  /** Whether messages are msgpackr records over the channel's shared structures. */
  readonly records: boolean;

  private segment: NativeSegment | undefined;
  private readonly ring: RingMemory;
  private readonly codec: Codec<T>;
  private readonly structures: SharedStructures | undefined;
  private readonly announcements: Announcements;
  private readonly spin: SpinBudget;
  private readonly removal: Removal | undefined;
  private writer: SpscWriter | MpscWriter | undefined;
  private reader: SpscReader | MpscReader | undefined;

  private constructor(
    name: string,
    segment: NativeSegment,
    fields: HeaderFields,
    codec: Codec<T>,
    spinMicros: number,
    unlinkOnClose: boolean,
  ) {
    this.name = name;
    this.segment = segment;
    this.records = fields.codec === L.CODEC_MSGPACK_RECORDS;
    if (this.records) {
      this.structures = new SharedStructures(segment.buffer(), (slot, pid) => segment.claimantAlive(slot, pid));
      this.codec = makeCodec<T>('msgpack', this.structures);
    } else {
      this.codec = codec;
    }
    this.spin = new SpinBudget(spinMicros);
    const buffer = segment.buffer();
    this.backend = new Uint32Array(buffer, 0, L.HEADER_SIZE >> 2)[L.OFF_BACKEND >> 2] === L.BACKEND_SYSV ? 'sysv' : 'posix';
    const ids = this.backend === 'sysv' ? segment.ids() : undefined;
    this.key = ids?.key;
    this.mode = fields.mode;
    this.capacity = fields.capacity;
    this.maxMessageSize = fields.maxMessageSize;
    this.ring = new RingMemory(segment, buffer, this.capacity, this.maxMessageSize);
    this.announcements = new Announcements(this.ring.i32);
    if (unlinkOnClose) {
      this.removal =
        ids === undefined
          ? { backend: 'posix', name, inode: inodeOf(name) }
          : { backend: 'sysv', shmid: ids.shmid, semid: ids.semid };
      unlinkOnCollect.register(this, this.removal, this);
    }
  }

  /** Creates a channel; fails with ERR_CHANNEL_EXISTS if the name is taken. */
  static create<T = unknown>(name: string, options?: CreateOptions<T>): Channel<T> {
    const channel = normalizeName(name);
    const o = checkOptions(options);
    const key = keyFor(checkBackend(o.backend), o.key, channel);
    const mode = o.mode === undefined ? 'spsc' : o.mode;
    if (mode !== 'spsc' && mode !== 'mpsc') throw invalidArg(`mode must be 'spsc' or 'mpsc', got ${describe(mode)}`);
    const capacity = roundCapacity(integerOption(o, 'capacity', DEFAULT_CAPACITY, 1, L.MAX_CAPACITY));
    const limit = native.maxMessageLimit(capacity);
    const maxMessageSize = integerOption(o, 'maxMessageSize', Math.min(limit, capacity / 4), 1, limit);
    const permissions = integerOption(o, 'permissions', 0o600, 0, 0o777);
    const spinMicros = integerOption(o, 'spinMicros', DEFAULT_SPIN_MICROS, 0, 1_000_000);
    const unlinkOnClose = booleanOption(o, 'unlinkOnClose', true);
    const codec = makeCodec(o.codec as CodecOption<T> | undefined);
    const records = booleanOption(o, 'records', false);
    if (records && codec.kind !== 'msgpack')
      throw invalidArg(`records: true needs the 'msgpack' codec, not '${codec.kind}' (records are msgpackr's)`);
    let segment: NativeSegment;
    try {
      const layout = {
        capacity,
        mode: mode === 'mpsc' ? L.MODE_MPSC : L.MODE_SPSC,
        maxMessageSize,
        codec: records ? L.CODEC_MSGPACK_RECORDS : codecIds[codec.kind],
        permissions,
      };
      segment = key === undefined ? native.createPosix(channel, layout) : native.createSysv(channel, key, layout);
    } catch (error) {
      throw fromNative(error, channel, key === undefined ? undefined : { key, action: 'create' });
    }
    try {
      return new Channel<T>(channel, segment, readHeader(channel, segment.buffer()), codec, spinMicros, unlinkOnClose);
    } catch (error) {
      segment.close();
      native.unlinkPosix(channel);
      throw error;
    }
  }

  /** Opens an existing channel; capacity and mode come from its header. */
  static open<T = unknown>(name: string, options?: OpenOptions<T>): Channel<T> {
    const channel = normalizeName(name);
    const o = checkOptions(options);
    const key = keyFor(checkBackend(o.backend), o.key, channel);
    const explicitTimeout = timeoutOf(o);
    const timeout = explicitTimeout ?? DEFAULT_OPEN_TIMEOUT;
    const spinMicros = integerOption(o, 'spinMicros', DEFAULT_SPIN_MICROS, 0, 1_000_000);
    const unlinkOnClose = booleanOption(o, 'unlinkOnClose', false);
    if (o.codec !== undefined) makeCodec(o.codec as CodecOption<T>); // reject a bad codec before touching anything
    const segment = openWaitingForName(channel, key, timeout, explicitTimeout !== undefined);
    let handle: Channel<T>;
    try {
      const fields = readHeader(channel, segment.buffer());
      const codec = codecFor<T>(channel, fields.codec, o.codec as CodecOption<T> | undefined);
      handle = new Channel<T>(channel, segment, fields, codec, spinMicros, unlinkOnClose);
    } catch (error) {
      segment.close();
      throw error;
    }
    return handle;
  }

  /** Removes a channel's name. Open handles keep working (a System V channel's
   * blocking calls excepted: its semaphore set goes at once); true if it existed. */
  static unlink(name: string, options?: { backend?: Backend; key?: SysvKey }): boolean {
    const channel = normalizeName(name);
    const o = checkOptions(options);
    const key = keyFor(checkBackend(o.backend), o.key, channel);
    if (key !== undefined) return unlinkSysv(channel, key);
    const rc = native.unlinkPosix(channel);
    if (rc === 0) return true;
    if (errnoName(rc) === 'ENOENT') return false;
    throw errorFromErrno(rc, { channel, syscall: 'shm_unlink' });
  }

  get closed(): boolean {
    return this.segment === undefined;
  }

  // ---- producing ----

  trySend(value: T): boolean {
    return this.attemptSend(value) === COMMITTED;
  }

  send(value: T, options?: WaitOptions): Promise<void> {
    try {
      const { signal, timeout } = waitOptionsOf(options);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      const first = this.attemptSend(value);
      if (first === COMMITTED) return Promise.resolve();
      return waitAsync(waitSteps(this.sendPlan(first, timeout), this.announcements), this.live(), signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  sendSync(value: T, options?: { timeout?: number }): void {
    const { timeout } = waitOptionsOf(options);
    const first = this.attemptSend(value);
    if (first !== COMMITTED) waitSync(waitSteps(this.sendPlan(first, timeout), this.announcements), this.live());
  }

  /** Ends the stream: the consumer gets everything sent before, then the end.
   * A producing call: it takes the producer role (a slot in mpsc). Idempotent. */
  end(): void {
    const segment = this.live();
    if (Atomics.load(this.ring.i32, L.OFF_ENDED >> 2) !== 0) return;
    this.producer();
    segment.end();
  }

  /** One try at sending: COMMITTED, or the encoded bytes to retry with. */
  private attemptSend(value: T): typeof COMMITTED | Uint8Array {
    this.live();
    if (value === undefined)
      throw invalidArg(`channel '${this.name}': cannot send undefined (it is what tryReceive() answers when empty); send null instead`);
    this.codec.check?.(value); // before the role is taken: a bad argument changes nothing
    this.checkNotEnded();
    const writer = this.producer();
    let result: typeof COMMITTED | Uint8Array;
    try {
      result = writer.trySendValue(this.codec, value);
    } catch (error) {
      throw this.dataPathError(error);
    }
    if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader(); // truncated while we wrote
    return result;
  }

  /** Waiting for room for bytes that did not fit on the first try. */
  private sendPlan(pending: Uint8Array, timeout: number | undefined): WaitPlan<undefined> {
    const writer = this.writer!;
    return {
      which: L.WAIT_SPACE,
      timeout,
      spin: this.spin,
      attempt: () => {
        let sent: boolean;
        try {
          sent = writer.trySendBytes(pending);
        } catch (error) {
          throw this.dataPathError(error);
        }
        if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader();
        return sent ? undefined : AGAIN;
      },
      check: () => {
        const segment = this.live();
        this.checkNotEnded();
        if (segment.consumerGone()) throw errorFromErrno(-errno.EPIPE, { channel: this.name });
      },
      onTimeout: () =>
        new ShmChanError('ERR_TIMEOUT', `channel '${this.name}': no room for the message before the timeout (the consumer is not keeping up)`),
      onSleepFailure: (rc) => this.sleepError(rc),
    };
  }

  private producer(): SpscWriter | MpscWriter {
    const segment = this.live();
    if (this.writer !== undefined) return this.writer;
    const slot = segment.claimProducer();
    if (slot === -errno.EUSERS)
      throw new ShmChanError(
        'ERR_TOO_MANY_PRODUCERS',
        `channel '${this.name}' already has ${L.MAX_PRODUCERS} live producers; close one first`,
        { errno: 'EUSERS' },
      );
    if (slot < 0) throw this.roleError(slot, 'producer', 'one producer at a time in spsc mode');
    this.structures?.producerSlot(slot);
    if (this.mode === 'mpsc') {
      this.writer = new MpscWriter(this.ring, slot, process.pid);
    } else {
      const tail = segment.recoverTail();
      if (tail < 0) throw errorFromErrno(tail, { channel: this.name });
      this.writer = new SpscWriter(this.ring, slot, tail);
    }
    return this.writer;
  }

  private checkNotEnded(): void {
    if (loadWord(this.ring.i32, L.OFF_ENDED >> 2) !== 0) throw this.endedError();
  }

  // ---- consuming ----

  tryReceive(): T | undefined {
    return this.tryReceiveWith(this.codec);
  }

  receive(options?: WaitOptions): Promise<T> {
    return this.receiveWith(this.codec, options);
  }

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

  // ---- the three ways of receiving, for any decoder ----

  private tryReceiveWith<V>(decoder: Decoder<V>): V | undefined {
    const value = this.attemptReceive(decoder);
    if (value === EMPTY) return undefined;
    if (value === ENDED) throw this.endedError();
    return value;
  }

  private receiveWith<V>(decoder: Decoder<V>, options: WaitOptions | undefined): Promise<V> {
    try {
      const { signal, timeout } = waitOptionsOf(options);
      if (signal?.aborted) return Promise.reject(abortError(signal));
      const first = this.attemptReceive(decoder);
      if (first === ENDED) throw this.endedError();
      if (first !== EMPTY) return Promise.resolve(first);
      return waitAsync(waitSteps(this.receivePlan(timeout, decoder), this.announcements), this.live(), signal).then((value) => {
        if (value === ENDED) throw this.endedError();
        return value;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private receiveSyncWith<V>(decoder: Decoder<V>, options: { timeout?: number } | undefined): V {
    const { timeout } = waitOptionsOf(options);
    let value = this.attemptReceive(decoder);
    if (value === EMPTY) value = waitSync(waitSteps(this.receivePlan(timeout, decoder), this.announcements), this.live());
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

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      let value = this.attemptReceive(this.codec);
      if (value === EMPTY) value = await waitAsync(waitSteps(this.receivePlan(undefined, this.codec), this.announcements), this.live(), undefined);
      if (value === ENDED) return;
      yield value;
    }
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

  private receivePlan<V>(timeout: number | undefined, decoder: Decoder<V>): WaitPlan<V | typeof ENDED> {
    return {
      which: L.WAIT_DATA,
      timeout,
      spin: this.spin,
      attempt: () => {
        const value = this.attemptReceive(decoder);
        return value === EMPTY ? AGAIN : value;
      },
      check: () => void this.live(),
      sliceMs: () => (this.reader instanceof MpscReader && this.reader.waitingOnClaim ? 2 : undefined),
      onTimeout: () => new ShmChanError('ERR_TIMEOUT', `channel '${this.name}': no message arrived before the timeout`),
      onSleepFailure: (rc) => this.sleepError(rc),
    };
  }

  /** A sleep that cannot continue, e.g. a System V semaphore set removed with ipcrm. */
  private sleepError(rc: number): ShmChanError {
    return errorFromErrno(rc, { channel: this.name, syscall: this.backend === 'sysv' ? 'semtimedop' : 'futex' });
  }

  private endedError(): ShmChanError {
    return errorFromErrno(-errno.ESHUTDOWN, { channel: this.name });
  }

  private consumer(): SpscReader | MpscReader {
    const segment = this.live();
    if (this.reader !== undefined) return this.reader;
    const rc = segment.claimConsumer();
    if (rc < 0) throw this.roleError(rc, 'consumer', 'one consumer at a time');
    this.reader = this.mode === 'mpsc' ? new MpscReader(this.ring) : new SpscReader(this.ring);
    return this.reader;
  }

  // ---- relaying (internal: for shmchan/nats, not public API) ----

  /** Takes the consumer role; messages are looked at first and consumed later. */
  [relayConsumer](): RelayConsumer {
    this.refuseRecordsRelay();
    return new RelayConsumer(this.consumer(), this.ring, this.relayHooks());
  }

  /** Takes the producer role of an spsc channel; sends still go through send(). */
  [relayProducer](): RelayProducer {
    this.refuseRecordsRelay();
    if (this.mode !== 'spsc') throw invalidArg(`channel '${this.name}' is mpsc; a relaying producer needs an spsc channel`);
    this.producer();
    return new RelayProducer(this.ring, 0, this.relayHooks());
  }

  /** Relayed bytes leave the segment, and records mean nothing without its structures. */
  private refuseRecordsRelay(): void {
    if (this.records)
      throw new ShmChanError(
        'ERR_INCOMPATIBLE',
        `channel '${this.name}' carries msgpackr records, which only decode with its own shared structures; bridge a channel created without { records: true }`,
      );
  }

  private relayHooks(): RelayHooks {
    return {
      live: () => void this.live(),
      error: (error) => this.dataPathError(error),
      waitUntil: (ready, signal) => {
        if (signal?.aborted) return Promise.reject(abortError(signal));
        const plan: WaitPlan<undefined> = {
          ...this.receivePlan(undefined, this.codec),
          attempt: () => {
            try {
              return ready() ? undefined : AGAIN;
            } catch (error) {
              throw this.dataPathError(error);
            }
          },
        };
        return waitAsync(waitSteps(plan, this.announcements), this.live(), signal);
      },
    };
  }

  // ---- lifecycle ----

  stats(): ChannelStats {
    const s = this.live().stats();
    return {
      ...s,
      consumerPid: s.consumerPid === 0 ? null : s.consumerPid,
      creatorPid: s.creatorPid === 0 ? null : s.creatorPid,
    };
  }

  /** Releases this handle's roles and mapping; the creator also removes the name
   * (unless unlinkOnClose is false). Pending waits reject with ERR_CLOSED. */
  close(): void {
    const segment = this.segment;
    if (segment === undefined) return;
    this.segment = undefined;
    segment.cancelWait(L.WAIT_DATA);
    segment.cancelWait(L.WAIT_SPACE);
    this.announcements.withdrawAll();
    segment.close();
    unlinkOnCollect.unregister(this);
    if (this.removal !== undefined) remove(this.removal);
  }

  [disposeSymbol](): void {
    this.close();
  }

  /** The segment of an open handle whose header still holds the magic. The magic
   * never changes in a healthy channel; it reads as 0 after another process
   * truncated the segment (see native/src/guard.c) or overwrote it. */
  private live(): NativeSegment {
    if (this.segment === undefined) throw errorFromErrno(-errno.EBADF, { channel: this.name });
    if (this.ring.i32[0] !== L.MAGIC) throw this.corruptHeader();
    return this.segment;
  }

  private corruptHeader(): ShmChanError {
    return new ShmChanError(
      'ERR_CORRUPT',
      `channel '${this.name}' is corrupt: its header no longer holds shmchan's magic (another process overwrote or truncated the segment); remove and recreate it`,
    );
  }

  private roleError(rc: number, role: string, rule: string): ShmChanError {
    if (rc !== -errno.EBUSY) return errorFromErrno(rc, { channel: this.name });
    const holder = role === 'consumer' ? this.stats().consumerPid : null;
    const who = holder === null ? 'another live handle' : holder === process.pid ? 'another handle in this process' : `process ${holder}`;
    return new ShmChanError(
      'ERR_ROLE_TAKEN',
      `channel '${this.name}' already has a ${role} (${who}); ${rule}: close that handle first`,
      { errno: 'EBUSY' },
    );
  }

  /** Turns a failure inside the data path into a ShmChanError that names the channel. */
  private dataPathError(error: unknown): ShmChanError {
    if (error instanceof ShmChanError) return error;
    if (error instanceof StreamEnded) return this.endedError();
    if (error instanceof CorruptRing)
      return new ShmChanError('ERR_CORRUPT', `channel '${this.name}' is corrupt (${error.message}); remove and recreate it`);
    if (error instanceof MessageTooLarge)
      return new ShmChanError(
        'ERR_MESSAGE_TOO_LARGE',
        `channel '${this.name}': the message encodes to ${error.length} bytes, more than maxMessageSize ${error.max} (create the channel with a larger maxMessageSize or capacity)`,
      );
    if (error instanceof LeaveUnread)
      return new ShmChanError(
        'ERR_MESSAGE_TOO_LARGE',
        `channel '${this.name}': the next message has ${error.payload} bytes, more than the ${error.room} of the buffer to receive into; it stays in the channel (a buffer of maxMessageSize, ${this.maxMessageSize} bytes, always fits)`,
      );
    if (error instanceof DecodeFailure)
      return new ShmChanError(
        'ERR_DECODE',
        `channel '${this.name}': a message could not be decoded and was skipped (${String((error.error as Error)?.message ?? error.error)}); do both sides use the same codec?`,
        { cause: error.error },
      );
    return new ShmChanError(
      'ERR_ENCODE',
      `channel '${this.name}': the value cannot be encoded (${String((error as Error)?.message ?? error)}); nothing was sent`,
      { cause: error },
    );
  }
}

function openWaitingForName(channel: string, key: number | undefined, timeout: number, waitForName: boolean): NativeSegment {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      // the native wait takes an int32 of milliseconds; Infinity would become 0
      const left = Math.min(2 ** 31 - 1, Math.max(0, deadline - Date.now()));
      return key === undefined ? native.openPosix(channel, left) : native.openSysv(channel, key, left);
    } catch (error) {
      const rc = (error as { errno?: number }).errno;
      if (!(waitForName && rc !== undefined && errnoName(rc) === 'ENOENT' && Date.now() < deadline)) {
        if (rc === -errno.ETIMEDOUT)
          throw new ShmChanError(
            'ERR_TIMEOUT',
            `channel '${channel}' exists but was not initialised within ${timeout} ms (its creator may have died; remove it with Channel.unlink)`,
          );
        throw fromNative(error, channel, key === undefined ? undefined : { key, action: 'open' });
      }
      sleepThread(5);
    }
  }
}

function codecFor<T>(channel: string, stored: number, option: CodecOption<T> | undefined): Codec<T> {
  const storedName = codecNames[stored] ?? 'custom';
  if (option === undefined) {
    if (storedName === 'custom')
      throw invalidArg(`channel '${channel}' was created with a custom codec: pass the same { encode, decode } as options.codec`);
    return makeCodec<T>(storedName);
  }
  const codec = makeCodec(option);
  if (stored === L.CODEC_MSGPACK_RECORDS && codec.kind === 'custom')
    throw new ShmChanError(
      'ERR_INCOMPATIBLE',
      `channel '${channel}' carries msgpackr records (created with { records: true }); a custom codec cannot read them (leave codec out)`,
    );
  if (codec.kind !== 'custom' && codec.kind !== storedName)
    throw new ShmChanError(
      'ERR_INCOMPATIBLE',
      `channel '${channel}' was created with codec '${storedName}', not '${codec.kind}' (leave codec out to use the channel's own)`,
    );
  return codec;
}

/** A native create/open failure as a ShmChanError; for System V, a taken key
 * names whatever holds it. */
function fromNative(error: unknown, channel: string, sysv?: { key: number; action: 'create' | 'open' }): ShmChanError {
  const { errno: rc, syscall } = error as { errno?: number; syscall?: string };
  if (typeof rc !== 'number') return error as ShmChanError;
  if (sysv !== undefined && rc === -errno.EEXIST) return keyTakenError(channel, sysv.key, sysv.action, syscall);
  return errorFromErrno(rc, { channel, syscall });
}

function unlinkSysv(channel: string, key: number): boolean {
  const rc = native.unlinkSysv(channel, key);
  if (rc === 0) return true;
  if (rc === -errno.ENOENT) return false;
  if (rc === -errno.EEXIST) throw keyTakenError(channel, key, 'remove', undefined);
  if (rc === -errno.EPROTONOSUPPORT)
    throw new ShmChanError(
      'ERR_INCOMPATIBLE',
      `refusing to remove channel '${channel}': its System V key ${hexKey(key)} holds a segment that is not a shmchan channel (see ipcs -m)`,
    );
  throw errorFromErrno(rc, { channel, syscall: 'shmctl' });
}
