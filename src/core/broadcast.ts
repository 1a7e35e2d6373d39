// Broadcast (publish/subscribe): every subscriber reads every record from its own
// cursor, kept in its consumer slot; only producers move the head. With overflow
// 'block' a producer releases up to the slowest live subscriber; with 'overwrite'
// it releases what it needs and pushes lapped subscribers past it, counting what
// they lost. A subscriber moves its cursor by CAS after it decoded a record, so a
// record overwritten while it was read is never returned (Agrona's
// BroadcastReceiver validates after reading the same way). The protocol is
// described in docs/protocol.md ("Fan-out").
import * as L from './layout';
import type { Decoder } from './codec';
import { CorruptRing, DecodeFailure, Lagged } from './errors';
import { Releaser, consumerWords, isDataType, markerAlive, type Boundaries, type ReleasePlan } from './fanout';
import { RecordScanner, STEP, STOP, type FoundRecord } from './mpsc';
import type { From } from './options';
import { EMPTY, ENDED, SpaceWaker, decodePayload, type RingMemory } from './ring';

const TAIL = L.OFF_TAIL >> 2;
const RELEASING = L.OFF_RELEASING >> 2;
const PID_MASK = (1 << L.OWNER_PID_BITS) - 1;
/** Attempts at subscribing while producers keep releasing past the chosen start. */
const JOIN_ATTEMPTS = 1000;
/** 'overwrite': a producer without room releases at least this part of the ring, so
 * that it pushes subscribers once per many messages rather than once per message. */
const OVERWRITE_CHUNK_SHIFT = 4;

/** The consumer slots' limit of a channel, read once and kept within 1..MAX_CONSUMERS. */
export function maxConsumersOf(ring: RingMemory): number {
  const max = Atomics.load(ring.i32, L.OFF_MAX_CONSUMERS >> 2);
  return max >= 1 && max <= L.MAX_CONSUMERS ? max : L.MAX_CONSUMERS;
}

const positionViews = new WeakMap<RingMemory, BigUint64Array>();
/** The header as u64 words: subscribers' positions are cursor | lost << 32, changed in one CAS. */
function positions(ring: RingMemory): BigUint64Array {
  let view = positionViews.get(ring);
  if (view === undefined) {
    view = new BigUint64Array(ring.i32.buffer, 0, L.HEADER_SIZE >> 3);
    positionViews.set(ring, view);
  }
  return view;
}

const cursorOf = (position: bigint) => Number(position & 0xffffffffn);
const lostOf = (position: bigint) => Number(position >> 32n);
const positionOf = (cursor: number, lost: number) => BigInt(cursor >>> 0) | (BigInt(lost >>> 0) << 32n);

export class BroadcastReader {
  /** Messages overwritten before this handle read them. */
  messagesLost = 0;
  private cursor = 0;
  private lost = 0;
  private readonly words: ReturnType<typeof consumerWords>;
  private readonly big: BigUint64Array;
  private readonly scanner: RecordScanner;
  private readonly spaceWaker: SpaceWaker;

  constructor(
    private readonly ring: RingMemory,
    readonly slot: number,
    from: From,
    /** The channel's overflow is 'overwrite': producers may push this subscriber. */
    readonly overwrite: boolean,
  ) {
    this.words = consumerWords(slot);
    this.big = positions(ring);
    const releaser = new Releaser(ring, () => consumerMarkerOfSlot(slot));
    this.scanner = new RecordScanner(ring, { finishDeadClaim: (idx, length, type) => releaser.finishDeadClaim(idx, length, type) });
    this.spaceWaker = new SpaceWaker(ring, () => this.roomMade());
    this.join(from);
  }

  get waitingOnClaim(): boolean {
    return this.scanner.waitingOnClaim;
  }

  /** Stores the start cursor, then the owner word (now producers wait for it), and
   * starts again if a release passed the start meanwhile. */
  private join(from: From): void {
    const { i32, capacity } = this.ring;
    for (let attempt = 0; attempt < JOIN_ATTEMPTS; attempt++) {
      const releasing = Atomics.load(i32, RELEASING) >>> 0;
      const tail = Atomics.load(i32, TAIL) >>> 0;
      if ((tail - releasing) >>> 0 > capacity) {
        // a release between the two loads lets producers claim past the old RELEASING
        if (Atomics.load(i32, RELEASING) >>> 0 !== releasing) continue;
        throw new CorruptRing(`the release position (${releasing}) and the tail (${tail}) are more than the ring's ${capacity} bytes apart`);
      }
      const start = from === 'oldest' ? releasing : tail;
      const lost = lostOf(Atomics.load(this.big, this.words.position));
      Atomics.store(this.big, this.words.position, positionOf(start, lost));
      Atomics.store(i32, this.words.owner, process.pid & PID_MASK || 1);
      // a release lock in this slot's name was left by a dead subscriber that had the
      // slot (a subscriber's marker has no generation, so it would look alive for ever)
      Atomics.compareExchange(i32, L.OFF_RELEASE_LOCK >> 2, consumerMarkerOfSlot(this.slot), 0);
      const now = Atomics.load(i32, RELEASING) >>> 0;
      if ((start - now) >>> 0 <= capacity) {
        this.cursor = start;
        this.lost = lost;
        return;
      }
    }
    throw new CorruptRing('producers kept releasing past every start a new subscriber chose');
  }

  /** Under 'block': where the cursor goes once the view a holding decoder answered
   * last is no longer in use (producers cannot pass the cursor meanwhile); -1: none. */
  private heldNext = -1;

  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    this.releaseHeld();
    for (;;) {
      let value: T | DecodeFailure;
      let next: number;
      try {
        const found = this.scanner.scan(this.cursor, dataOnly);
        if (found === EMPTY || found === ENDED) {
          if (this.scanner.reached === this.cursor || this.advance(this.scanner.reached)) return found;
          continue;
        }
        value = decodePayload(codec, this.ring, found.idx + L.RECORD_HEADER, found.idx + found.length);
        next = (found.position + (found.length + 7)) & ~7;
      } catch (error) {
        // what looked corrupt may have been overwritten under us: then we were pushed
        if (error instanceof CorruptRing && this.overwrite && this.wasPushed()) continue;
        throw error;
      }
      if (codec.holds === true && !this.overwrite && !(value instanceof DecodeFailure)) {
        this.heldNext = next >>> 0;
        return value;
      }
      if (!this.advance(next >>> 0)) continue;
      if (value instanceof DecodeFailure) throw value;
      return value;
    }
  }

  /**
   * Whether producers sleeping for room would find some now, released up to the
   * slowest subscriber: a quarter of the ring, or all of it. Every subscriber counts
   * what it read itself, so without this each would wake the producers once per
   * quarter, and they would find only what the slowest had read. A subscriber that
   * has read everything while there is still no room also wakes them when a slowest
   * subscriber is dead, for a producer drops it when it looks.
   */
  private roomMade(): boolean {
    const { i32, capacity } = this.ring;
    const head = Atomics.load(i32, L.OFF_HEAD >> 2) >>> 0;
    const tail = Atomics.load(i32, TAIL) >>> 0;
    if ((tail - head) >>> 0 > capacity) return true; // the producer finds the corruption when it looks
    const { cursor, slots } = slowest(this.ring, head, tail);
    if (cursor === tail || capacity - ((tail - cursor) >>> 0) >= capacity >> 2) return true;
    return this.cursor === tail && slots.some((slot) => !markerAlive(this.ring, consumerMarkerOfSlot(slot)));
  }

  /** For a relay (the NATS bridge), which reads ahead and moves the cursor later:
   * where the cursor is. */
  get position(): number {
    return this.cursor;
  }

  /** For a relay: the record at or after `position` (at or after the cursor), left
   * unread; `scanned` is then where the scan stopped (past any padding). */
  peek(position: number): FoundRecord | typeof EMPTY | typeof ENDED {
    return this.scanner.scan(position, dataOnly);
  }

  get scanned(): number {
    return this.scanner.reached;
  }

  /** Moves past the message a holding decoder answered last, if it is still held. */
  releaseHeld(): void {
    const next = this.heldNext;
    if (next < 0) return;
    this.heldNext = -1;
    this.advance(next);
  }

  /**
   * Moves the cursor to `next`. Under 'overwrite' by CAS: false when a producer
   * pushed the cursor meanwhile (what was read is discarded); ERR_LAGGED when the
   * push skipped messages. Also a relay's commit.
   */
  advance(next: number): boolean {
    if (!this.overwrite) {
      const step = (next - this.cursor) >>> 0;
      this.cursor = next;
      // the low half of the position: nobody else writes it under 'block'
      Atomics.store(this.ring.i32, this.words.position * 2, next | 0);
      this.spaceWaker.released(step, next);
      return true;
    }
    const expected = positionOf(this.cursor, this.lost);
    if (Atomics.compareExchange(this.big, this.words.position, expected, positionOf(next, this.lost)) === expected) {
      this.cursor = next;
      return true;
    }
    this.wasPushed();
    return false;
  }

  /** After a failed CAS or an impossible record: takes the pushed cursor, and throws
   * Lagged if the push skipped messages. False when the cursor had not moved. */
  wasPushed(): boolean {
    const position = Atomics.load(this.big, this.words.position);
    const cursor = cursorOf(position);
    const lost = lostOf(position);
    if (cursor === this.cursor && lost === this.lost) return false;
    const missed = (lost - this.lost) >>> 0;
    this.cursor = cursor;
    this.lost = lost;
    if (missed === 0) return true;
    this.messagesLost += missed;
    throw new Lagged(missed);
  }
}

/** A subscriber reads data records only (padding is stepped over by the scan). */
/** A broadcast scan's visitor: steps over padding, stops at data, and anything else is corrupt. */
function dataOnly(type: number): number {
  if (type === L.RECORD_PADDING) return STEP;
  if (!isDataType(type)) throw new CorruptRing(`a record of type ${type} in a broadcast ring`);
  return STOP;
}

/** The lowest cursor in [head, tail] of the subscribers whose owner word is set, and their slots. */
function slowest(ring: RingMemory, head: number, tail: number): { cursor: number; slots: number[] } {
  const { i32 } = ring;
  const big = positions(ring);
  const span = (tail - head) >>> 0;
  let lowest = span;
  let slots: number[] = [];
  for (let slot = 0, max = maxConsumersOf(ring); slot < max; slot++) {
    const words = consumerWords(slot);
    if (Atomics.load(i32, words.owner) === 0) continue;
    const ahead = (cursorOf(Atomics.load(big, words.position)) - head) >>> 0;
    if (ahead > span) continue; // not (yet) a cursor of this lap: see "Fan-out" in shmchan.h
    if (ahead < lowest) {
      lowest = ahead;
      slots = [slot];
    } else if (ahead === lowest) {
      slots.push(slot);
    }
  }
  return { cursor: (head + lowest) >>> 0, slots };
}

/** What a producer without room does on a broadcast channel: release, under the
 * channel's overflow rule. True when the head moved. */
export class BroadcastRoom {
  private readonly big: BigUint64Array;
  private readonly maxConsumers: number;

  constructor(
    private readonly ring: RingMemory,
    private readonly releaser: Releaser,
    private readonly overwrite: boolean,
  ) {
    this.big = positions(ring);
    this.maxConsumers = maxConsumersOf(ring);
  }

  make(need: number): boolean {
    if (this.overwrite) return this.releaser.release((head, tail) => this.overwritePlan(head, tail, need), true);
    if (this.releaser.release((head, tail) => this.blockPlan(head, tail), true)) return true;
    // no progress: the slowest subscribers may be dead; drop them and try again
    return this.droppedDead() && this.releaser.release((head, tail) => this.blockPlan(head, tail), true);
  }

  /** 'block': up to the lowest cursor of the subscribers whose owner word is set. */
  private blockPlan(head: number, tail: number): ReleasePlan {
    return { passes: () => true, counts: isDataType, bound: slowest(this.ring, head, tail).cursor, room: 0 };
  }

  /** Clears the owner word of the slowest subscribers whose slot nobody holds. */
  private droppedDead(): boolean {
    const i32 = this.ring.i32;
    const head = this.releaser.head();
    const { slots } = slowest(this.ring, head, Atomics.load(i32, TAIL) >>> 0);
    let dropped = false;
    for (const slot of slots) {
      const owner = consumerWords(slot).owner;
      const word = Atomics.load(i32, owner);
      if (word === 0 || markerAlive(this.ring, consumerMarkerOfSlot(slot))) continue;
      if (Atomics.compareExchange(i32, owner, word, 0) === word) dropped = true;
    }
    return dropped;
  }

  /** 'overwrite': whole records from the head until there is room (at least a chunk). */
  private overwritePlan(_head: number, tail: number, need: number): ReleasePlan {
    return {
      passes: () => true,
      counts: isDataType,
      bound: tail,
      room: Math.max(need, this.ring.capacity >> OVERWRITE_CHUNK_SHIFT),
      beforeZeroing: (from, to, boundaries) => this.push(from, to, boundaries),
    };
  }

  /** Moves every cursor in [from, to) to `to`, adding the data records it skips to its lost count. */
  private push(from: number, to: number, boundaries: Boundaries): void {
    const span = (to - from) >>> 0;
    for (let slot = 0; slot < this.maxConsumers; slot++) {
      const index = consumerWords(slot).position;
      for (;;) {
        const position = Atomics.load(this.big, index);
        const cursor = cursorOf(position);
        if ((cursor - from) >>> 0 >= span) break;
        const skipped = boundaries.data - dataBefore(boundaries, cursor, from);
        const pushed = positionOf(to, lostOf(position) + skipped);
        if (Atomics.compareExchange(this.big, index, position, pushed) === position) break;
      }
    }
  }
}

/** A marker naming consumer slot `slot` whatever its generation (broadcast slots have none). */
function consumerMarkerOfSlot(slot: number): number {
  return (L.CONSUMER_FLAG | (slot << L.CLAIM_SLOT_SHIFT)) | 0;
}

/** The data records before `cursor` in the released range; all of them for a cursor on
 * no record boundary (left by a releaser that died halfway), which then counts none lost. */
function dataBefore(boundaries: Boundaries, cursor: number, from: number): number {
  const { positions: at, dataBefore: counts } = boundaries;
  const target = (cursor - from) >>> 0;
  let low = 0;
  let high = boundaries.count - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const offset = (at[middle] - from) >>> 0;
    if (offset === target) return counts[middle];
    if (offset < target) low = middle + 1;
    else high = middle - 1;
  }
  return boundaries.data;
}
