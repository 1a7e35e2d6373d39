// The SPSC data path: one producer commits records at its tail, one consumer
// reads them at its head. Each side caches the other's cursor and reads it again
// only when it has to.
import * as L from './layout';
import type { Codec, Decoder } from './codec';
import { CorruptRing, DecodeFailure } from './errors';
import {
  COMMITTED,
  EMPTY,
  ENDED,
  SpaceWaker,
  addCounter,
  align8,
  checkSize,
  decodePayload,
  fillPayload,
  producerEntry,
  storeHeadPosition,
  type PeekedRecord,
  type RingMemory,
  wakeArmed,
} from './ring';
import { loadWord } from './words';

const RECORD = L.RECORD_HEADER;

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
    const entry = producerEntry(slot);
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
   * known to be free. Returns COMMITTED, or the encoded bytes when the ring has no
   * room for them now: bytes that are valid only until the next send (in the ring,
   * or the encoder's scratch buffer), which a caller that retries later copies.
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
          this.commit(idx, encoded);
          return COMMITTED;
        }
        return bytes.subarray(offset, offset + encoded);
      }
      return this.trySendBytes(encoded) ? COMMITTED : encoded;
    }
    const encoded = codec.encode(value);
    return this.trySendBytes(encoded) ? COMMITTED : encoded;
  }

  /** Copies already encoded bytes into the ring; false when there is no room. */
  trySendBytes(encoded: Uint8Array): boolean {
    const at = this.reserve(encoded.length);
    if (at < 0) return false;
    this.ring.bytes.set(encoded, at + RECORD);
    this.commit(at, encoded.length);
    return true;
  }

  /** Lets fill write a payload of `length` bytes in place, and commits it when fill
   * returns; false when there is no room (fill is not called). A fill that throws
   * commits nothing: the tail stays, and what fill wrote is free space again. */
  trySendFilled(length: number, fill: (target: Buffer) => void): boolean {
    const at = this.reserve(length);
    if (at < 0) return false;
    fillPayload(this.ring, at, length, fill);
    this.commit(at, length);
    return true;
  }

  /** The ring index where a record of `length` payload bytes goes now: the tail's,
   * or 0 when it does not fit before the ring's end; -1 when there is no room. */
  private reserve(length: number): number {
    checkSize(length, this.ring.maxMessageSize);
    const capacity = this.ring.capacity;
    const idx = this.tail & this.ring.mask;
    const size = align8(RECORD + length);
    const padding = capacity - idx < size ? capacity - idx : 0;
    if (!this.hasRoom(padding + size + RECORD)) return -1;
    return padding === 0 ? idx : 0;
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

  /** Publishes a record of `length` payload bytes at ring index `at`: the tail's,
   * or 0 after padding from the tail to the ring's end. */
  private commit(at: number, length: number): void {
    const { i32, mask } = this.ring;
    const tailIdx = this.tail & mask;
    const padding = at === tailIdx ? 0 : this.ring.capacity - tailIdx;
    const size = align8(RECORD + length);
    i32[this.ring.lengthIndex(at) + 1] = L.RECORD_DATA;
    i32[this.ring.lengthIndex((at + size) & mask)] = 0;
    Atomics.store(i32, this.ring.lengthIndex(at), RECORD + length);
    if (padding !== 0) {
      i32[this.ring.lengthIndex(tailIdx) + 1] = L.RECORD_PADDING;
      Atomics.store(i32, this.ring.lengthIndex(tailIdx), padding);
    }
    this.tail = (this.tail + padding + size) >>> 0;
    // A plain store, as the C core's release store: readers find records by their
    // length word, whose Atomics.store above is also the fence before the
    // sequence load of wakeArmed below, so a second seq_cst store here would only add a fence. The tail
    // serves stats, the space waker and recovery, and it never runs ahead of a
    // committed record.
    i32[L.OFF_TAIL >> 2] = this.tail | 0;
    addCounter(i32, this.messagesIndex, 1);
    addCounter(i32, this.bytesIndex, length);
    wakeArmed(this.ring, L.WAIT_DATA);
  }
}

/** A data record found by the scanner: its ring index and length word, and the
 * padding skipped before it. */
interface FoundRecord {
  idx: number;
  length: number;
  skipped: number;
}

/** The single consumer. Reading a record and publishing the new head is what
 * makes a message consumed. */
export class SpscReader {
  private head: number;
  private readonly spaceWaker: SpaceWaker;
  /** The ring bytes of the message a holding decoder answered (its view is still
   * in use), with the padding before it; 0: none. */
  private heldStep = 0;
  private heldPayload = 0;

  constructor(private readonly ring: RingMemory) {
    this.head = Atomics.load(ring.i32, L.OFF_HEAD >> 2) >>> 0;
    this.spaceWaker = new SpaceWaker(ring);
  }

  /** The next message, EMPTY, or ENDED. A message that fails to decode is consumed
   * and the decoder's error is thrown wrapped in DecodeFailure. */
  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    if (this.heldStep !== 0) this.releaseHeld();
    const found = this.scan(this.head);
    if (found === EMPTY || found === ENDED) return found;
    const start = found.idx + RECORD;
    const value = decodePayload(codec, this.ring, start, found.idx + found.length);
    const step = found.skipped + align8(found.length);
    if (codec.holds === true && !(value instanceof DecodeFailure)) {
      // the answer is a view of the record: consumed only at the next read
      this.heldStep = step;
      this.heldPayload = found.length - RECORD;
      return value;
    }
    this.consumed(step, found.length - RECORD);
    if (value instanceof DecodeFailure) throw value;
    return value;
  }

  /** Consumes the message a holding decoder answered last, if it is still held. */
  releaseHeld(): void {
    const step = this.heldStep;
    if (step === 0) return;
    this.heldStep = 0;
    this.consumed(step, this.heldPayload);
  }

  /**
   * Looks at the message at ring position `position` (the head, or the `next` of
   * an earlier peek) without consuming it. For consumers that hand a message on
   * and consume it only once it is safe elsewhere; the producer never writes over
   * unconsumed records, so the payload stays put until commit().
   */
  peek(position: number): PeekedRecord | typeof EMPTY | typeof ENDED {
    this.releaseHeld();
    const found = this.scan(position);
    if (found === EMPTY || found === ENDED) return found;
    const start = found.idx + RECORD;
    return { start, end: found.idx + found.length, next: (position + found.skipped + align8(found.length)) >>> 0 };
  }

  /**
   * The one reading of the ring: the data record at `position`, after the padding
   * that may fill the ring's end, checked against everything the producer could
   * have written. Padding fills the ring to its end and never starts at 0 (a record
   * always fits there), so at most one is skipped.
   */
  private scan(position: number): FoundRecord | typeof EMPTY | typeof ENDED {
    const { i32, capacity, mask } = this.ring;
    if ((position & 7) !== 0) throw new CorruptRing(`a head of ${position}, not a multiple of 8`);
    let skipped = 0;
    for (;;) {
      const idx = (position + skipped) & mask;
      const length = loadWord(i32, this.ring.lengthIndex(idx));
      if (length === 0) {
        if (Atomics.load(i32, L.OFF_ENDED >> 2) === 0) return EMPTY;
        // end() follows the producer's last commit: look once more
        if (Atomics.load(i32, this.ring.lengthIndex(idx)) === 0) return ENDED;
        continue;
      }
      const type = i32[this.ring.lengthIndex(idx) + 1];
      if (type === L.RECORD_PADDING) {
        if (idx === 0 || length !== capacity - idx) throw new CorruptRing(`padding record of ${length} bytes at ${idx}`);
        skipped += length;
        continue;
      }
      const payload = length - RECORD;
      if (type !== L.RECORD_DATA || payload < 0 || payload > this.ring.maxMessageSize || idx + align8(length) > capacity)
        throw new CorruptRing(`record of type ${type} and length ${length} at ${idx}`);
      return { idx, length, skipped };
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
