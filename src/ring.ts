// The data path: records written into and read out of the mapped ring with
// Atomics, with no native call per message. The protocol is the one described
// in native/include/shmchan.h and implemented for C programs in native/src/ring.c.
import { layout as L, type NativeSegment } from './binding';
import type { Codec, Decoder } from './codec';
import { loadWord } from './words';

const H = L.HEADER_SIZE;
const RECORD = L.RECORD_HEADER;

/** The mapping as JavaScript sees it. Sizes are read once, at open, and trusted
 * from then on; everything read later from shared memory is checked. */
export class RingMemory {
  readonly i32: Int32Array;
  /** The ring bytes only: index 0 is the first ring byte. */
  readonly bytes: Buffer;
  readonly mask: number;

  constructor(
    readonly segment: NativeSegment,
    buffer: ArrayBuffer,
    readonly capacity: number,
    readonly maxMessageSize: number,
  ) {
    this.i32 = new Int32Array(buffer, 0, (H + capacity) >> 2);
    this.bytes = Buffer.from(buffer, H, capacity);
    this.mask = capacity - 1;
  }

  /** The length word of the record at ring index idx. */
  lengthIndex(idx: number): number {
    return (H + idx) >> 2;
  }
}

/** Thrown inside the data path; the Channel turns it into an ERR_CORRUPT naming the channel. */
export class CorruptRing extends Error {}

export const align8 = (n: number) => (n + 7) & ~7;

/** Adds to a u64 counter kept as two little-endian u32 words; it has one writer. */
export function addCounter(i32: Int32Array, index: number, delta: number): void {
  const low = (i32[index] >>> 0) + delta;
  if (low > 0xffffffff) {
    i32[index] = low - 0x100000000;
    i32[index + 1] = i32[index + 1] + 1;
  } else {
    i32[index] = low;
  }
}

/**
 * Wakes producers that sleep for room: once a quarter of the ring has been freed
 * since the last wake-up, or when the ring is empty, not after every record. Each
 * wake-up is a system call, and a context switch for every sleeping producer; a
 * producer woken for one record's room fills it and sleeps again, so with several
 * producers on a busy machine the consumer spent its time waking them (4 → 1
 * fan-in ran at half a unix socket's rate). A sleeper also looks again on its own
 * every 100 ms (SLICE_MS in src/wait.ts, LIVENESS_CHECK_MS in C), so a consumer
 * that frees a little and then stops delays a producer by at most that.
 */
export class SpaceWaker {
  private freed = 0;
  constructor(private readonly ring: RingMemory) {}

  /** The consumer freed `bytes` and its head is now `head`. */
  released(bytes: number, head: number): void {
    const i32 = this.ring.i32;
    if (loadWord(i32, L.OFF_SPACE_WAITERS >> 2) === 0) {
      this.freed = 0; // counted from when a producer starts to sleep
      return;
    }
    this.freed += bytes;
    if (this.freed < this.ring.capacity >> 2 && Atomics.load(i32, L.OFF_TAIL >> 2) >>> 0 !== head) return;
    this.freed = 0;
    this.ring.segment.wake(L.WAIT_SPACE);
  }
}

/** What trySend answers when it committed the message. */
export const COMMITTED = true;

/**
 * The single producer of an SPSC ring. It owns every byte from its tail up to
 * the consumer's head (plus a lap); it zeroes the length word after each record
 * before committing it, so stray bytes it left in free space are never read.
 */
export class SpscWriter {
  private tail: number;
  private cachedHead: number;
  private readonly messagesIndex: number;
  private readonly bytesIndex: number;

  constructor(
    private readonly ring: RingMemory,
    slot: number,
    tail: number,
  ) {
    this.tail = tail >>> 0;
    this.cachedHead = Atomics.load(ring.i32, L.OFF_HEAD >> 2) >>> 0;
    const entry = L.OFF_PRODUCERS + slot * L.PRODUCER_SIZE;
    this.messagesIndex = (entry + L.PRODUCER_MESSAGES) >> 2;
    this.bytesIndex = (entry + L.PRODUCER_BYTES) >> 2;
  }

  /** Bytes in use as far as this writer knows (its view of head may be old). */
  private used(): number {
    const used = (this.tail - this.cachedHead) >>> 0;
    if (used > this.ring.capacity) throw new CorruptRing('the consumer cursor is ahead of the producer cursor');
    return used;
  }

  private refreshHead(): number {
    this.cachedHead = loadWord(this.ring.i32, L.OFF_HEAD >> 2) >>> 0;
    return this.used();
  }

  /**
   * Encodes value and commits it, in place when the bytes after the tail are
   * known to be free. Returns COMMITTED, or the encoded bytes (the caller's own
   * copy) when the ring has no room for them now.
   */
  trySendValue<T>(codec: Codec<T>, value: T): true | Uint8Array {
    const { capacity, bytes } = this.ring;
    const idx = this.tail & this.ring.mask;
    if (codec.encodeInto !== undefined && this.freeToEnd(idx)) {
      const offset = idx + RECORD;
      const encoded = codec.encodeInto(value, bytes, offset);
      if (typeof encoded === 'number') {
        checkSize(encoded, this.ring.maxMessageSize);
        const size = align8(RECORD + encoded);
        if (idx + size <= capacity && this.hasRoom(size + RECORD)) {
          this.commit(idx, 0, encoded);
          return COMMITTED;
        }
        return Buffer.from(bytes.subarray(offset, offset + encoded)); // no room yet: keep our own copy for the retry
      }
      return this.trySendBytes(encoded) ? COMMITTED : Buffer.from(encoded);
    }
    const encoded = codec.encode(value);
    return this.trySendBytes(encoded) ? COMMITTED : Buffer.from(encoded);
  }

  /** Copies already encoded bytes into the ring; false when there is no room. */
  trySendBytes(encoded: Uint8Array): boolean {
    const { capacity, bytes } = this.ring;
    checkSize(encoded.length, this.ring.maxMessageSize);
    const idx = this.tail & this.ring.mask;
    const size = align8(RECORD + encoded.length);
    const padding = capacity - idx < size ? capacity - idx : 0;
    if (!this.hasRoom(padding + size + RECORD)) return false;
    const at = padding === 0 ? idx : 0;
    bytes.set(encoded, at + RECORD);
    this.commit(at, padding, encoded.length);
    return true;
  }

  /** True when [idx, capacity) holds nothing unread. */
  private freeToEnd(idx: number): boolean {
    if (this.unreadIsBefore(idx)) return true;
    this.refreshHead();
    return this.unreadIsBefore(idx);
  }

  /** The unread bytes, if any, lie in [head, idx) without wrapping. */
  private unreadIsBefore(idx: number): boolean {
    return this.used() === 0 || (this.cachedHead & this.ring.mask) < idx;
  }

  private hasRoom(needed: number): boolean {
    const capacity = this.ring.capacity;
    return capacity - this.used() >= needed || capacity - this.refreshHead() >= needed;
  }

  /** Publishes a record of `length` payload bytes at ring index `at`, preceded by
   * `padding` bytes of padding at the old tail when the record wrapped to 0. */
  private commit(at: number, padding: number, length: number): void {
    const { i32, mask } = this.ring;
    const size = align8(RECORD + length);
    i32[this.ring.lengthIndex(at) + 1] = L.RECORD_DATA;
    i32[this.ring.lengthIndex((at + size) & mask)] = 0;
    Atomics.store(i32, this.ring.lengthIndex(at), RECORD + length);
    if (padding !== 0) {
      const idx = this.tail & mask;
      i32[this.ring.lengthIndex(idx) + 1] = L.RECORD_PADDING;
      Atomics.store(i32, this.ring.lengthIndex(idx), padding);
    }
    this.tail = (this.tail + padding + size) >>> 0;
    // A plain store, as the C core's release store: readers find records by their
    // length word, whose Atomics.store above is also the fence before the waiters
    // load below. A second seq_cst store here was a third of commit's time in a
    // profile. The tail serves stats, the space waker and recovery, and it never
    // runs ahead of a committed record.
    i32[L.OFF_TAIL >> 2] = this.tail | 0;
    addCounter(i32, this.messagesIndex, 1);
    addCounter(i32, this.bytesIndex, length);
    if (loadWord(i32, L.OFF_DATA_WAITERS >> 2) !== 0) this.ring.segment.wake(L.WAIT_DATA);
  }
}

export function checkSize(length: number, max: number): void {
  if (length > max) throw new MessageTooLarge(length, max);
}

export class MessageTooLarge extends Error {
  constructor(
    readonly length: number,
    readonly max: number,
  ) {
    super('message too large');
  }
}

export const EMPTY: unique symbol = Symbol('empty');
export const ENDED: unique symbol = Symbol('ended');

/** A message looked at but not consumed: its payload is ring bytes [start, end),
 * and `next` is the ring position after it (after any padding before it, too). */
export interface PeekedRecord {
  readonly start: number;
  readonly end: number;
  readonly next: number;
}

/** The head as a 64-bit position, from OFF_HEAD_POSITION (rule in shmchan.h). */
export function recoverHeadPosition(ring: RingMemory, head: number): bigint {
  const stored = headPositionView(ring);
  const position = Atomics.load(stored, 0);
  const low = Number(position & 0xffffffffn);
  const ahead = (low - head) >>> 0;
  if (ahead <= ring.capacity) return position - BigInt(ahead);
  return position + BigInt((head - low) >>> 0);
}

/** Stored in one 64-bit write, before the head itself moves. */
export function storeHeadPosition(ring: RingMemory, position: bigint): void {
  Atomics.store(headPositionView(ring), 0, position);
}

const headPositionViews = new WeakMap<RingMemory, BigUint64Array>();
function headPositionView(ring: RingMemory): BigUint64Array {
  let view = headPositionViews.get(ring);
  if (view === undefined) {
    view = new BigUint64Array(ring.i32.buffer, L.OFF_HEAD_POSITION, 1);
    headPositionViews.set(ring, view);
  }
  return view;
}

/** The single consumer. Reading a record and publishing the new head is what
 * makes a message consumed. */
export class SpscReader {
  private head: number;
  private readonly spaceWaker: SpaceWaker;

  constructor(private readonly ring: RingMemory) {
    this.head = Atomics.load(ring.i32, L.OFF_HEAD >> 2) >>> 0;
    this.spaceWaker = new SpaceWaker(ring);
  }

  /** The next message, EMPTY, or ENDED. A message that fails to decode is consumed
   * and the decoder's error is thrown wrapped in DecodeFailure. */
  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    const { i32, capacity, mask } = this.ring;
    if ((this.head & 7) !== 0) throw new CorruptRing(`a head of ${this.head}, not a multiple of 8`);
    for (;;) {
      const idx = this.head & mask;
      const length = loadWord(i32, this.ring.lengthIndex(idx));
      if (length === 0) {
        if (Atomics.load(i32, L.OFF_ENDED >> 2) === 0) return EMPTY;
        // end() follows the producer's last commit: look once more
        if (Atomics.load(i32, this.ring.lengthIndex(idx)) === 0) return ENDED;
        continue;
      }
      const type = i32[this.ring.lengthIndex(idx) + 1];
      if (type === L.RECORD_PADDING) {
        // Padding fills the ring to its end and never starts at 0 (a record always
        // fits there), so this loop turns at most once.
        if (idx === 0 || length !== capacity - idx) throw new CorruptRing(`padding record of ${length} bytes at ${idx}`);
        this.advance(length);
        continue;
      }
      const payload = length - RECORD;
      if (type !== L.RECORD_DATA || payload < 0 || payload > this.ring.maxMessageSize || idx + align8(length) > capacity)
        throw new CorruptRing(`record of type ${type} and length ${length} at ${idx}`);
      const start = idx + RECORD;
      let value: T;
      try {
        value = codec.decode(this.ring.bytes, start, start + payload);
      } catch (error) {
        // a damaged record structure table (src/structures.ts) is the segment's fault, not the message's
        if (error instanceof CorruptRing || error instanceof LeaveUnread) throw error;
        this.consumed(align8(length), payload);
        throw new DecodeFailure(error);
      }
      this.consumed(align8(length), payload);
      return value;
    }
  }

  /**
   * Looks at the message at ring position `position` (the head, or the `next` of
   * an earlier peek) without consuming it. For consumers that hand a message on
   * and consume it only once it is safe elsewhere; the producer never writes over
   * unconsumed records, so the payload stays put until commit().
   */
  peek(position: number): PeekedRecord | typeof EMPTY | typeof ENDED {
    const { i32, capacity, mask } = this.ring;
    for (;;) {
      const idx = position & mask;
      const length = Atomics.load(i32, this.ring.lengthIndex(idx));
      if (length === 0) {
        if (Atomics.load(i32, L.OFF_ENDED >> 2) === 0) return EMPTY;
        if (Atomics.load(i32, this.ring.lengthIndex(idx)) === 0) return ENDED;
        continue;
      }
      const type = i32[this.ring.lengthIndex(idx) + 1];
      if (type === L.RECORD_PADDING) {
        if (length !== capacity - idx) throw new CorruptRing(`padding record of ${length} bytes at ${idx}`);
        position = (position + length) >>> 0;
        continue;
      }
      const payload = length - RECORD;
      if (type !== L.RECORD_DATA || payload < 0 || payload > this.ring.maxMessageSize || idx + align8(length) > capacity)
        throw new CorruptRing(`record of type ${type} and length ${length} at ${idx}`);
      return { start: idx + RECORD, end: idx + length, next: (position + align8(length)) >>> 0 };
    }
  }

  get headIndex(): number {
    return this.head;
  }

  /** Consumes every record up to peeked.next, the oldest peeked message first;
   * `position` is the 64-bit head after it, stored before the head moves. */
  commit(peeked: PeekedRecord, position: bigint): void {
    addCounter(this.ring.i32, L.OFF_RECV_MESSAGES >> 2, 1);
    addCounter(this.ring.i32, L.OFF_RECV_BYTES >> 2, peeked.end - peeked.start);
    storeHeadPosition(this.ring, position);
    this.advance((peeked.next - this.head) >>> 0);
  }

  /** True when a record (or the end) is there to read; cheap enough to spin on. */
  ready(): boolean {
    return (
      Atomics.load(this.ring.i32, this.ring.lengthIndex(this.head & this.ring.mask)) !== 0 ||
      Atomics.load(this.ring.i32, L.OFF_ENDED >> 2) !== 0
    );
  }

  private consumed(step: number, payload: number): void {
    addCounter(this.ring.i32, L.OFF_RECV_MESSAGES >> 2, 1);
    addCounter(this.ring.i32, L.OFF_RECV_BYTES >> 2, payload);
    this.advance(step);
  }

  private advance(step: number): void {
    const i32 = this.ring.i32;
    this.head = (this.head + step) >>> 0;
    Atomics.store(i32, L.OFF_HEAD >> 2, this.head | 0);
    this.spaceWaker.released(step, this.head);
  }
}

/** Thrown by a decoder that cannot take a message (a caller's buffer too small for
 * it): the reader leaves the message unread, to be read again. */
export class LeaveUnread extends Error {
  constructor(
    readonly payload: number,
    readonly room: number,
  ) {
    super('message left unread');
  }
}

export class DecodeFailure extends Error {
  constructor(readonly error: unknown) {
    super('decode failed');
  }
}
