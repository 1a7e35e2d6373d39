// What both ring modes share: the mapping as JavaScript sees it, record sizes,
// counters, the head's 64-bit position, and waking producers that wait for room.
// The data path writes and reads records with Atomics, with no native call per
// message; the protocol is described in docs/protocol.md and
// native/include/shmchan.h. spsc.ts and mpsc.ts hold each mode's writer and reader.
import type { NativeSegment } from './binding';
import * as L from './layout';
import { CorruptRing, DecodeFailure, LeaveUnread, MessageTooLarge } from './errors';
import { loadWord } from './words';

const H = L.HEADER_SIZE;

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

/** Whose claim a marker is: the word a producer writes into what it claims (a
 * record's type word, the structure table's lock) holds the claim flag, its slot,
 * and the generation the slot had when the producer took it (native claimMarker). */
export function claimOwner(marker: number): { slot: number; generation: number } {
  return { slot: (marker >>> L.CLAIM_SLOT_SHIFT) & (L.MAX_PRODUCERS - 1), generation: marker & L.CLAIM_GENERATION_MASK };
}

/** The header offset of producer slot `slot`'s entry. */
export function producerEntry(slot: number): number {
  return L.OFF_PRODUCERS + slot * L.PRODUCER_SIZE;
}

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
 * producers on a busy machine the consumer would spend its time waking them. A
 * sleeper also looks again on its own every 100 ms (sliceMs in wait.ts,
 * LIVENESS_CHECK_MS in C), so a consumer that frees a little and then stops
 * delays a producer by at most that.
 */
export class SpaceWaker {
  private freed = 0;
  /** `roomMade`: whether the room a producer would find now is worth a wake-up
   * (a broadcast subscriber asks whether the slowest subscriber has moved on). */
  constructor(
    private readonly ring: RingMemory,
    private readonly roomMade: () => boolean = () => true,
  ) {}

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
    if (this.roomMade()) wakeArmed(this.ring, L.WAIT_SPACE);
  }
}

const SEQUENCE_INDEX = [L.OFF_DATA_SEQ >> 2, L.OFF_SPACE_SEQ >> 2];

/** The waker's side of the eventcount (native/src/wait.c), after a publication:
 * a system call only when a sleeper armed the line since the last wake-up. Call
 * it after a seq_cst store (Atomics.store), which orders the load here after the
 * publication. */
export function wakeArmed(ring: RingMemory, which: number): void {
  if ((loadWord(ring.i32, SEQUENCE_INDEX[which]) & L.SEQ_ARMED) !== 0) ring.segment.wake(which);
}

/** A sendWith fill that threw: nothing was committed, and the channel throws
 * `error` itself, unwrapped. */
export class FillFailed {
  constructor(readonly error: unknown) {}
}

/** Lets a sendWith fill write the payload of `length` bytes of the record at ring
 * index `at`; a fill that throws is wrapped in FillFailed. */
export function fillPayload(ring: RingMemory, at: number, length: number, fill: (target: Buffer) => void): void {
  const start = at + L.RECORD_HEADER;
  try {
    fill(ring.bytes.subarray(start, start + length));
  } catch (error) {
    throw new FillFailed(error);
  }
}

/** What trySend answers when it committed the message. */
export const COMMITTED = true;

export function checkSize(length: number, max: number): void {
  if (length > max) throw new MessageTooLarge(length, max);
}

/**
 * Decodes a record's payload, ring bytes [start, end). A message that fails to
 * decode comes back as a DecodeFailure, to be consumed and then thrown; a failure
 * that is the segment's (a damaged structure table) or a decoder that leaves the
 * message unread throws at once, and the message stays.
 */
export function decodePayload<T>(
  codec: { decode(bytes: Buffer, start: number, end: number): T },
  ring: RingMemory,
  start: number,
  end: number,
): T | DecodeFailure {
  try {
    return codec.decode(ring.bytes, start, end);
  } catch (error) {
    if (error instanceof CorruptRing || error instanceof LeaveUnread) throw error;
    return new DecodeFailure(error);
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

/** The head as a 64-bit position, from OFF_HEAD_POSITION (rule in docs/protocol.md). */
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

