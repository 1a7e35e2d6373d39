// The MPSC data path: many producers claim records with a CAS, commit on their
// own, and the consumer delivers committed records in ring order, turning the
// claim of a producer that died into padding. The protocol is described in
// docs/protocol.md ("MPSC records").
import * as L from './layout';
import type { Codec, Decoder } from './codec';
import { CorruptRing, DecodeFailure, StreamEnded } from './errors';
import {
  COMMITTED,
  EMPTY,
  ENDED,
  SpaceWaker,
  addCounter,
  align8,
  checkSize,
  claimOwner,
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
const TAIL = L.OFF_TAIL >> 2;
const HEAD = L.OFF_HEAD >> 2;
const RELEASING = L.OFF_RELEASING >> 2;
const ENDED_FLAG = L.OFF_ENDED >> 2;
/** How long the consumer waits on an unfinished claim before it asks whether its owner lives. */
const DEAD_CLAIM_CHECK_MS = 1;
/** How many times a producer finds a claim without its length before it asks whether its owner
 * lives; a live owner that stays stuck that long makes the producer report no room for now. */
const CONTENDED_CHECKS = 256;
/** The MPSC consumer reads the tail at an empty header only this often (see RecordScanner.scan). */
const TAIL_LOOK_EVERY = 256;

/**
 * Turns the claim at idx (need bytes, possibly wrapping to offset 0) into padding.
 * Used for a claim whose record is committed at 0 (the normal wrap), a claim made
 * after end(), and a dead producer's claim. The final length is set by CAS, so
 * the consumer and the producer can both finish it and neither writes late.
 */
export function finishAsPadding(ring: RingMemory, idx: number, need: number): void {
  const { i32, capacity } = ring;
  const toEnd = capacity - idx;
  if (need > toEnd && Atomics.load(i32, ring.lengthIndex(0)) === 0) {
    Atomics.store(i32, ring.lengthIndex(0) + 1, L.RECORD_PADDING);
    Atomics.store(i32, ring.lengthIndex(0), need - toEnd);
  }
  Atomics.store(i32, ring.lengthIndex(idx) + 1, L.RECORD_PADDING);
  Atomics.compareExchange(i32, ring.lengthIndex(idx), -need, Math.min(need, toEnd));
}

/** Moves the tail from `at` past the claim of `need` bytes there, unless it has
 * moved already: the claimant does it, and so does whoever meets the claim with
 * its length stored (a producer, or the consumer once the claimant is dead). */
function moveTailPast(i32: Int32Array, at: number, need: number): void {
  Atomics.compareExchange(i32, TAIL, at | 0, (at + need) | 0);
}

/** Records up to this size are zeroed a word at a time: Buffer#fill goes through
 * a C++ builtin whose call costs more than zeroing a small record itself. */
const ZERO_BY_WORDS = 256;

/** Zeroes ring bytes [from, to), both multiples of 8 (free ring bytes are always zero). */
export function zero(ring: RingMemory, from: number, to: number): void {
  if (to - from > ZERO_BY_WORDS) {
    ring.bytes.fill(0, from, to);
    return;
  }
  const i32 = ring.i32;
  for (let i = ring.lengthIndex(from), end = ring.lengthIndex(to); i < end; i++) i32[i] = 0;
}

export class MpscWriter {
  private cachedHead: number;
  private readonly marker: number;
  private readonly messagesIndex: number;
  private readonly bytesIndex: number;
  private contended = 0;
  private stuckTail = -1;
  private stuckMarker = 0;

  constructor(
    private readonly ring: RingMemory,
    slot: number,
    marker: number,
    /** Fan-out modes: frees room when the ring is full (moves the head), true if it did. */
    private readonly makeRoom?: (need: number) => boolean,
  ) {
    this.cachedHead = Atomics.load(ring.i32, HEAD) >>> 0;
    this.marker = marker;
    const entry = producerEntry(slot);
    this.messagesIndex = (entry + L.PRODUCER_MESSAGES) >> 2;
    this.bytesIndex = (entry + L.PRODUCER_BYTES) >> 2;
  }

  /** Producers must know the size before they claim, so the value is encoded first.
   * Like SpscWriter.trySendValue, the bytes it answers are valid until the next send. */
  trySendValue<T>(codec: Codec<T>, value: T): true | Uint8Array {
    const encoded = codec.encode(value);
    return this.trySendBytes(encoded) ? COMMITTED : encoded;
  }

  trySendBytes(encoded: Uint8Array): boolean {
    const at = this.claim(encoded.length);
    if (at < 0) return false;
    this.ring.bytes.set(encoded, at + RECORD);
    this.publish(at, encoded.length);
    return true;
  }

  /** Lets fill write a payload of `length` bytes in place, and commits it when fill
   * returns; false when there is no room (fill is not called). The claim of a fill
   * that throws becomes padding, which the consumer passes (and zeroes). */
  trySendFilled(length: number, fill: (target: Buffer) => void): boolean {
    const at = this.claim(length);
    if (at < 0) return false;
    try {
      fillPayload(this.ring, at, length, fill);
    } catch (error) {
      finishAsPadding(this.ring, this.claimIdx, this.claimNeed);
      this.wakeConsumer();
      throw error;
    }
    this.publish(at, length);
    return true;
  }

  /** The ring index of this writer's claim, and the bytes it spans (with padding). */
  private claimIdx = 0;
  private claimNeed = 0;

  /** Claims room for a record of `length` payload bytes: the ring index it goes at
   * (the claim's, or 0 when it wraps), or -1 when there is no room now. */
  private claim(length: number): number {
    const { i32, capacity, mask } = this.ring;
    checkSize(length, this.ring.maxMessageSize);
    const size = align8(RECORD + length);
    // loadWord for the loads below: each turn of this loop makes an Atomics call
    // (the CAS, or meetClaim's loads) before it turns (see words.ts)
    for (;;) {
      const tail = loadWord(i32, TAIL) >>> 0;
      if ((tail & 7) !== 0) throw new CorruptRing(`a tail of ${tail}, not a multiple of 8`);
      const idx = tail & mask;
      const padding = capacity - idx < size ? capacity - idx : 0;
      const need = padding + size;
      if (!this.hasRoom(tail, need)) return -1;
      const lengthIndex = this.ring.lengthIndex(idx);
      const type = loadWord(i32, lengthIndex + 1);
      if (type !== 0) {
        if (!this.meetClaim(tail, idx, type)) return -1;
        continue;
      }
      if (Atomics.compareExchange(i32, lengthIndex + 1, 0, this.marker) !== 0) continue;
      if (loadWord(i32, TAIL) >>> 0 !== tail) {
        // the header was free because the tail had already moved past it: give it back
        Atomics.compareExchange(i32, lengthIndex + 1, this.marker, 0);
        continue;
      }
      // A plain store: the tail CAS just after it publishes it (a locked instruction
      // on x64, a store-release on arm64), and a helper reads it only once the tail
      // has moved; Atomics.store would add a builtin call and a fence.
      i32[lengthIndex] = -need;
      moveTailPast(i32, tail, need);
      if (loadWord(i32, ENDED_FLAG) !== 0) {
        finishAsPadding(this.ring, idx, need);
        this.wakeConsumer();
        throw new StreamEnded();
      }
      this.claimIdx = idx;
      this.claimNeed = need;
      return padding === 0 ? idx : 0;
    }
  }

  /** Commits the claimed record, whose payload of `length` bytes is in place at `at`. */
  private publish(at: number, length: number): void {
    const i32 = this.ring.i32;
    const idx = this.claimIdx;
    if (at === idx) {
      Atomics.store(i32, this.ring.lengthIndex(idx), RECORD + length);
    } else {
      i32[this.ring.lengthIndex(0) + 1] = L.RECORD_DATA;
      Atomics.store(i32, this.ring.lengthIndex(0), RECORD + length);
      finishAsPadding(this.ring, idx, this.claimNeed);
    }
    addCounter(i32, this.messagesIndex, 1);
    addCounter(i32, this.bytesIndex, length);
    this.wakeConsumer();
  }

  private hasRoom(tail: number, need: number): boolean {
    const capacity = this.ring.capacity;
    for (let refreshed = false; ; refreshed = true) {
      const used = (tail - this.cachedHead) >>> 0;
      if (used > capacity) {
        if (!refreshed) {
          this.cachedHead = loadWord(this.ring.i32, HEAD) >>> 0;
          continue;
        }
        // the tail we read may be older than the head we just read
        if (Atomics.load(this.ring.i32, TAIL) >>> 0 !== tail) return true;
        throw new CorruptRing('the consumer cursor is ahead of the producer cursor');
      }
      if (capacity - used >= need) return true;
      if (refreshed) return this.makeRoom !== undefined && this.roomMade(tail, need);
      this.cachedHead = loadWord(this.ring.i32, HEAD) >>> 0;
    }
  }

  private roomMade(tail: number, need: number): boolean {
    if (!this.makeRoom!(need)) return false;
    this.cachedHead = loadWord(this.ring.i32, HEAD) >>> 0;
    const used = (tail - this.cachedHead) >>> 0;
    return used <= this.ring.capacity && this.ring.capacity - used >= need;
  }

  /** The header at the tail is taken: help its claimant move the tail on, or take
   * back a claim whose owner died before it said how much it needed. False when a
   * live claimant stays stuck there: no room for now (the caller may wait), rather
   * than spinning for as long as it is stopped, or for ever if the marker is forged. */
  private meetClaim(tail: number, idx: number, type: number): boolean {
    const { i32, capacity } = this.ring;
    const length = Atomics.load(i32, this.ring.lengthIndex(idx));
    // Read after the header: a claimant moves the tail before it commits, so a
    // tail that has not moved means the header really is an unfinished claim.
    if (Atomics.load(i32, TAIL) >>> 0 !== tail) return true;
    if (type >= 0) throw new CorruptRing(`a committed record of type ${type} at the tail (${idx})`);
    if (length < 0) {
      const need = -length;
      if (need % 8 !== 0 || need < RECORD || need > capacity) throw new CorruptRing(`a claim of ${need} bytes at the tail (${idx})`);
      moveTailPast(i32, tail, need);
      return true;
    }
    if (length !== 0) throw new CorruptRing(`a claim at the tail (${idx}) with length ${length}`);
    if (type === this.marker) throw new CorruptRing(`an unfinished claim at the tail (${idx}) in this handle's own name`);
    if (tail !== this.stuckTail || type !== this.stuckMarker) {
      this.stuckTail = tail;
      this.stuckMarker = type;
      this.contended = 0;
    }
    if (++this.contended % CONTENDED_CHECKS !== 0) return true;
    const { slot, generation } = claimOwner(type);
    if (this.ring.segment.claimantAlive(slot, generation)) return false;
    Atomics.compareExchange(i32, this.ring.lengthIndex(idx) + 1, type, 0);
    return true;
  }

  private wakeConsumer(): void {
    // after the Atomics.store of the length word, which is the fence
    wakeArmed(this.ring, L.WAIT_DATA);
  }
}

/** A scan's visitor's answers for a committed record: stop there (the scan answers
 * it), step over it, or step over it having released it (zeroed, the head moved
 * past it: it does not count towards the one lap a scan may step over). */
export const STOP = 0;
export const STEP = 1;
export const RELEASED = 2;

/** A committed record found by a scan: its ring index, length word, type word and position. */
export interface FoundRecord {
  idx: number;
  length: number;
  type: number;
  position: number;
}

/** The header words of a committed record at ring index idx, checked against the
 * ring (its type is the caller's to check: which types may be there depends on the mode). */
export function checkRecord(ring: RingMemory, idx: number, length: number, type: number): void {
  if (recordFits(ring, idx, length, type)) return;
  throw new CorruptRing(type === L.RECORD_PADDING ? `padding record of ${length} bytes at ${idx}` : `record of type ${type} and length ${length} at ${idx}`);
}

/** Whether a committed record's length fits its type and the ring (checkRecord's test). */
export function recordFits(ring: RingMemory, idx: number, length: number, type: number): boolean {
  if (type === L.RECORD_PADDING) return length % 8 === 0 && idx + length <= ring.capacity;
  const payload = length - RECORD;
  return payload >= 0 && payload <= ring.maxMessageSize && idx + align8(length) <= ring.capacity;
}

/**
 * The one reading of the records producers write, for every mode that has them
 * (mpsc, mpmc, broadcast). From `position` on it finishes wrapped claims, turns the
 * claims of dead producers into padding, checks each committed record against
 * everything a producer could have written, and asks `visit` what to do with it.
 * Every shared word is read once into a local, and only the local is used. What it
 * steps over without releasing is bounded by the ring's size, so a ring filled
 * with forged records cannot keep it turning. `reached` is the position after
 * what it stepped over.
 */
export class RecordScanner {
  /** True while the next record is claimed but not committed: waits use short sleeps
   * so that a dead claimant is noticed within milliseconds. */
  waitingOnClaim = false;
  reached = 0;
  /** A tail read earlier. A position before it is before the tail now, for the tail
   * only moves on (and never a lap past a position still being read), so the scan
   * reads the contended tail word only once it has caught up with this one. */
  private knownTail: number;
  private stuckAt = -1;
  private stuckSince = 0;
  /** Empty headers met at the head since the tail was last read there (MPSC only). */
  private emptyLooks = 0;
  private readonly tailFirst: boolean;
  private readonly finishDeadClaim: (idx: number, length: number, type: number) => boolean;

  /**
   * The MPSC consumer's scan (no `fanOut`): the bytes at its head are free when the
   * head is the tail, so it reads the header first, and the tail only now and
   * then while the header is empty (see scan), and it turns a dead producer's
   * claim into padding at once (no release can pass its head). A fan-out reader's scan (`fanOut`): a position at
   * the tail may hold a full ring's oldest record, so it reads the tail first, and
   * a release may overtake it, so `finishDeadClaim` must turn a dead claim (its
   * header words as read) into padding under the release lock, or it could write
   * into the record of a later lap; false when it cannot now (the scan then waits
   * as on a live claim).
   */
  constructor(
    private readonly ring: RingMemory,
    fanOut?: { finishDeadClaim: (idx: number, length: number, type: number) => boolean },
  ) {
    this.knownTail = Atomics.load(ring.i32, TAIL) >>> 0;
    this.tailFirst = fanOut !== undefined;
    this.finishDeadClaim = fanOut?.finishDeadClaim ?? ((idx, length) => (finishAsPadding(ring, idx, -length), true));
  }

  scan(position: number, visit: (type: number, idx: number, length: number, position: number) => number): FoundRecord | typeof EMPTY | typeof ENDED {
    const { i32, capacity, mask } = this.ring;
    if ((position & 7) !== 0) throw new CorruptRing(`a cursor of ${position}, not a multiple of 8`);
    let passed = 0;
    for (;;) {
      this.reached = position;
      const idx = position & mask;
      const lengthIndex = this.ring.lengthIndex(idx);
      let length: number;
      const ahead = (this.knownTail - position) >>> 0;
      if (ahead !== 0 && ahead <= capacity) {
        length = loadWord(i32, lengthIndex);
      } else if (this.tailFirst) {
        // a position at the tail has nothing to read, whatever the bytes there hold
        // (a full ring's oldest record)
        const atTail = this.atTail(position);
        if (atTail !== undefined) return atTail;
        length = loadWord(i32, lengthIndex);
      } else {
        // Past the tail read last (or at it): that reading says nothing here, and
        // if it were kept, a scan a whole 2^32 positions on would take it for a
        // tail ahead of it.
        this.knownTail = position;
        // the bytes at the head are free when it is the tail: a committed length
        // there means the tail has moved on
        length = loadWord(i32, lengthIndex);
        if (length === 0) {
          // Nothing to read: a claimant stores its length before it moves the tail.
          // Reading the tail to say so would take its cache line from the producers
          // at every look, and each claim would wait to get it back. The end flag
          // (rarely written) is read instead, and the tail now and then, and
          // before every sleep: only the tail tells a hole (a header another process
          // zeroed, records after it) from an empty ring.
          if (++this.emptyLooks < TAIL_LOOK_EVERY && Atomics.load(i32, ENDED_FLAG) === 0) {
            this.waitingOnClaim = false;
            return EMPTY;
          }
          this.emptyLooks = 0;
          const atTail = this.atTail(position);
          if (atTail !== undefined) return atTail;
          length = loadWord(i32, lengthIndex);
        }
      }
      // Before the tail a header is never empty: a claimant stores its length before
      // it moves the tail, and a record is zeroed only after every cursor has passed it.
      if (length === 0) throw new CorruptRing(`an empty record at ${idx}, before the tail`);
      const type = loadWord(i32, lengthIndex + 1);
      if (length < 0) {
        const need = -length;
        if (need % 8 !== 0 || need < RECORD || need > capacity) throw new CorruptRing(`a claim of ${need} bytes at ${idx}`);
        if (type === L.RECORD_PADDING) {
          Atomics.compareExchange(i32, lengthIndex, length, Math.min(need, capacity - idx));
          continue;
        }
        if (type >= 0) throw new CorruptRing(`an unfinished record of type ${type} at ${idx}`);
        if (!this.claimIsDead(type, position)) {
          this.waitingOnClaim = true;
          return EMPTY;
        }
        // its claimant may have died between storing the length and moving the tail,
        // and the head must not pass the tail
        moveTailPast(i32, position, need);
        if (!this.finishDeadClaim(idx, length, type)) {
          this.waitingOnClaim = true;
          return EMPTY;
        }
        continue;
      }
      this.waitingOnClaim = false;
      checkRecord(this.ring, idx, length, type);
      const answer = visit(type, idx, length, position);
      if (answer === STOP) return { idx, length, type, position };
      const step = type === L.RECORD_PADDING ? length : align8(length);
      if (answer !== RELEASED) {
        passed += step;
        if (passed > capacity) throw new CorruptRing(`records all the way round the ring from ${idx}`);
      }
      position = (position + step) >>> 0;
    }
  }

  /** EMPTY or ENDED when `position` is the tail; otherwise the tail is known to be
   * past it (and not more than a ring ahead, or the ring is corrupt). */
  private atTail(position: number): typeof EMPTY | typeof ENDED | undefined {
    const i32 = this.ring.i32;
    // The end is read before the tail: a producer checks for the end after it moves
    // the tail, so one that missed the end has moved a tail we are about to read.
    const ended = Atomics.load(i32, ENDED_FLAG) !== 0;
    const tail = Atomics.load(i32, TAIL) >>> 0;
    if (tail === position) {
      this.waitingOnClaim = false;
      // the end counts once every claim made before it is finished
      return ended ? ENDED : EMPTY;
    }
    if ((tail - position) >>> 0 > this.ring.capacity) throw new CorruptRing(`a cursor (${position}) ahead of the tail (${tail})`);
    this.knownTail = tail;
    return undefined;
  }

  /** The next empty header at the head reads the tail: before a wait sleeps, a hole must not look like an empty ring. */
  lookAtTailNext(): void {
    this.emptyLooks = TAIL_LOOK_EVERY - 1;
  }

  private claimIsDead(marker: number, at: number): boolean {
    const now = performance.now();
    if (this.stuckAt !== at) {
      this.stuckAt = at;
      this.stuckSince = now;
      return false;
    }
    if (now - this.stuckSince < DEAD_CLAIM_CHECK_MS) return false;
    this.stuckSince = now;
    const { slot, generation } = claimOwner(marker);
    return !this.ring.segment.claimantAlive(slot, generation);
  }
}

export class MpscReader {
  private head: number;
  private readonly scanner: RecordScanner;
  private readonly spaceWaker: SpaceWaker;
  /** The record a holding decoder answered last (its view is still in use): ring
   * index and length word; a length of 0: none. */
  private heldIdx = 0;
  private heldLength = 0;

  constructor(private readonly ring: RingMemory) {
    this.head = Atomics.load(ring.i32, HEAD) >>> 0;
    this.scanner = new RecordScanner(ring);
    this.spaceWaker = new SpaceWaker(ring);
  }

  /** True while the next record is claimed but not committed: waits use short sleeps
   * so that a dead claimant is noticed within milliseconds. */
  get waitingOnClaim(): boolean {
    return this.scanner.waitingOnClaim;
  }

  /** Called before a wait sleeps: the next look at an empty head reads the tail. */
  beforeSleep(): void {
    this.scanner.lookAtTailNext();
  }

  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    if (this.heldLength !== 0) this.releaseHeld();
    const found = this.scanner.scan(this.head, this.releasePadding);
    if (found === EMPTY || found === ENDED) return found;
    const value = decodePayload(codec, this.ring, found.idx + RECORD, found.idx + found.length);
    if (codec.holds === true && !(value instanceof DecodeFailure)) {
      // the answer is a view of the record: consumed (and zeroed) only at the next read
      this.heldIdx = found.idx;
      this.heldLength = found.length;
      return value;
    }
    this.consumed(found.idx, found.length);
    if (value instanceof DecodeFailure) throw value;
    return value;
  }

  /** Consumes the message a holding decoder answered last, if it is still held. */
  releaseHeld(): void {
    const length = this.heldLength;
    if (length === 0) return;
    this.heldLength = 0;
    this.consumed(this.heldIdx, length);
  }

  /** Like SpscReader.peek: the message at `position` (at or after the head), not consumed. */
  peek(position: number): PeekedRecord | typeof EMPTY | typeof ENDED {
    this.releaseHeld();
    const found = this.scanner.scan(position, stepOverPadding);
    if (found === EMPTY || found === ENDED) return found;
    return { start: found.idx + RECORD, end: found.idx + found.length, next: (found.position + align8(found.length)) >>> 0 };
  }

  /** The scan of tryRead, from the head: padding there is released (zeroed, the head
   * moved on), and the first data record is the answer. */
  private readonly releasePadding = (type: number, idx: number, length: number): number => {
    if (type !== L.RECORD_PADDING) return dataRecord(type, idx, length);
    this.release(idx, length);
    return RELEASED;
  };

  get headIndex(): number {
    return this.head;
  }

  /** Consumes every record up to peeked.next, zeroing them (padding before the
   * message included); `position` is the 64-bit head after it. */
  commit(peeked: PeekedRecord, position: bigint): void {
    const { i32, capacity, mask } = this.ring;
    addCounter(i32, L.OFF_RECV_MESSAGES >> 2, 1);
    addCounter(i32, L.OFF_RECV_BYTES >> 2, peeked.end - peeked.start);
    storeHeadPosition(this.ring, position);
    const next = peeked.next;
    i32[RELEASING] = next | 0; // plain: see release()
    for (let at = this.head; at !== next; ) {
      const idx = at & mask;
      const chunk = Math.min((next - at) >>> 0, capacity - idx);
      zero(this.ring, idx, idx + chunk);
      at = (at + chunk) >>> 0;
    }
    const step = (next - this.head) >>> 0;
    this.head = next;
    Atomics.store(i32, HEAD, next | 0);
    this.spaceWaker.released(step, next);
  }

  private consumed(idx: number, length: number): void {
    addCounter(this.ring.i32, L.OFF_RECV_MESSAGES >> 2, 1);
    addCounter(this.ring.i32, L.OFF_RECV_BYTES >> 2, length - RECORD);
    this.release(idx, align8(length));
  }

  /** Zeroes a consumed record (free ring bytes are always zero) and moves the head
   * past it; RELEASING lets a successor finish this if we die halfway. */
  private release(idx: number, step: number): void {
    const { i32 } = this.ring;
    const next = (this.head + step) >>> 0;
    // plain: only a successor reads it, after this handle is gone (native/src/owners.c)
    i32[RELEASING] = next | 0;
    zero(this.ring, idx, idx + step);
    this.head = next;
    Atomics.store(i32, HEAD, next | 0);
    this.spaceWaker.released(step, next);
  }
}

/** The scan of peek: steps over padding and stops at the first data record. */
function stepOverPadding(type: number, idx: number, length: number): number {
  return type === L.RECORD_PADDING ? STEP : dataRecord(type, idx, length);
}

/** A committed record that is not padding must be data in MPSC. */
function dataRecord(type: number, idx: number, length: number): number {
  if (type !== L.RECORD_DATA && type >= 0) throw new CorruptRing(`record of type ${type} and length ${length} at ${idx}`);
  return STOP;
}
