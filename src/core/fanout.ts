// What the two fan-out modes ('mpmc', 'broadcast') share: consumer slots, the
// markers that name a producer or a consumer, and moving the head. Producers
// write records exactly as in MPSC (mpsc.ts); in these modes no single consumer
// owns the head, so it moves only under a lock word, by whichever handle holds
// it (docs/protocol.md, "Fan-out").
import * as L from './layout';
import { CorruptRing } from './errors';
import { checkRecord, finishAsPadding, recordFits, zero } from './mpsc';
import { addCounter, align8, producerEntry, type RingMemory, wakeArmed } from './ring';
import { loadWord } from './words';

const HEAD = L.OFF_HEAD >> 2;
const TAIL = L.OFF_TAIL >> 2;
const RELEASING = L.OFF_RELEASING >> 2;
const LOCK = L.OFF_RELEASE_LOCK >> 2;
const SLOT_MASK = L.MAX_CONSUMERS - 1;
/** Reads of two shared positions that moved meanwhile, before the pair counts as
 * corrupt: a live ring moves them a few times at most while we read; only a peer
 * that keeps rewriting them could use them all up. */
const CONSISTENT_READS = 1000;

/** Word indexes of consumer slot `slot` (it lives in producer entry `slot`, see shmchan.h). */
export function consumerWords(slot: number): { owner: number; generation: number; position: number } {
  const entry = producerEntry(slot);
  return { owner: (entry + L.CONSUMER_OWNER) >> 2, generation: (entry + L.CONSUMER_GENERATION) >> 2, position: (entry + L.CONSUMER_POSITION) >> 3 };
}

/** A consumer's marker: its slot and the generation the slot had when it took it. */
export function consumerMarker(slot: number, generation: number): number {
  return (L.CONSUMER_FLAG | (slot << L.CLAIM_SLOT_SHIFT) | (generation & L.CLAIM_GENERATION_MASK)) | 0;
}

/** Whether a word (a record's type, the release lock) holds a consumer's marker. */
export function isConsumerMarker(word: number): boolean {
  return (word & L.CLAIM_FLAG) === 0 && (word & L.CONSUMER_FLAG) !== 0;
}

/** Whether the producer or consumer a marker names still holds its slot in that generation. */
export function markerAlive(ring: RingMemory, marker: number): boolean {
  const slot = (marker >>> L.CLAIM_SLOT_SHIFT) & SLOT_MASK;
  const generation = marker & L.CLAIM_GENERATION_MASK;
  if (isConsumerMarker(marker)) return ring.segment.claimantAlive(L.MAX_PRODUCERS + slot, generation);
  if ((marker & L.CLAIM_FLAG) !== 0) return ring.segment.claimantAlive(slot, generation);
  return false; // not a marker at all: nobody holds it
}

/** A data record's type word: DATA, or the marker of the producer that committed it. */
export function isDataType(type: number): boolean {
  return type === L.RECORD_DATA || (type & L.CLAIM_FLAG) !== 0;
}

/** How far a release may go, and what it may pass. */
export interface ReleasePlan {
  /** Whether a committed record of this type may be released. */
  passes(type: number): boolean;
  /** Whether it counts as a received message (the header's counters). */
  counts(type: number): boolean;
  /** The position the release must not pass (the tail, or the slowest subscriber). */
  bound: number;
  /** Stop once this many bytes are free (overwrite); 0: go as far as the bound. */
  room: number;
  /** Called with the range released, before it is zeroed (broadcast 'overwrite' pushes subscribers). */
  beforeZeroing?(from: number, to: number, boundaries: Boundaries): void;
}

/** The records a release passed: their positions, and how many data records came
 * before each. A releaser keeps one and empties it at each release (a release is
 * made per message): entries past `count` are left over from earlier ones. */
export class Boundaries {
  count = 0;
  /** Data records passed. */
  data = 0;
  readonly positions: number[] = [];
  readonly dataBefore: number[] = [];

  clear(): void {
    this.count = 0;
    this.data = 0;
  }

  add(position: number, isData: boolean): void {
    this.positions[this.count] = position;
    this.dataBefore[this.count] = this.data;
    this.count++;
    if (isData) this.data++;
  }
}

/**
 * Moves the head: under the release lock, stores how far it goes in RELEASING,
 * zeroes the released bytes (free ring bytes are always zero), then stores the
 * head. A holder that died is replaced, and what it left half done is finished.
 */
export class Releaser {
  private readonly boundaries = new Boundaries();

  constructor(
    private readonly ring: RingMemory,
    private readonly marker: () => number,
  ) {}

  /**
   * The current head, checked against the tail. Outside the release lock another
   * producer may release between the two loads, and producers then claim past the
   * old head: a tail more than a ring past the head read is corrupt only if the
   * head has not moved meanwhile, so then it reads both again.
   */
  head(): number {
    const { i32, capacity } = this.ring;
    for (let reads = 1; ; reads++) {
      const head = loadWord(i32, HEAD) >>> 0;
      const tail = Atomics.load(i32, TAIL) >>> 0;
      if ((tail - head) >>> 0 <= capacity) return head;
      if (loadWord(i32, HEAD) >>> 0 === head || reads === CONSISTENT_READS)
        throw new CorruptRing(`the head (${head}) and the tail (${tail}) are more than the ring's ${capacity} bytes apart`);
    }
  }

  /** Where the oldest intact record is: RELEASING (bytes before it may be zeroed
   * already), checked to lie between the head and the tail. */
  oldest(releasing: number): number {
    const head = this.head();
    const tail = Atomics.load(this.ring.i32, TAIL) >>> 0;
    if ((releasing - head) >>> 0 > (tail - head) >>> 0) throw new CorruptRing(`a release up to ${releasing}, outside the head (${head}) and the tail (${tail})`);
    return releasing;
  }

  /**
   * Releases what the plan allows. `takeOver`: when the lock is held, ask whether
   * its holder lives (a system call) and take it from a dead one; otherwise give
   * up at once, the holder releasing for everyone. True when the head moved.
   */
  release(plan: (head: number, tail: number) => ReleasePlan, takeOver: boolean): boolean {
    const me = this.marker();
    if (!this.lock(me, takeOver)) return false;
    try {
      return this.releaseLocked(plan, takeOver);
    } finally {
      Atomics.compareExchange(this.ring.i32, LOCK, me, 0);
    }
  }

  /**
   * A reader's scan met a dead producer's claim (header words `length`, `type` at
   * ring index idx): turns it into padding under the release lock, if the header
   * still holds them. No release passes an unfinished claim, and none runs while
   * the lock is held, so the bytes written are the claim's own, never a later
   * lap's. False when the lock is busy: the reader waits and looks again.
   */
  finishDeadClaim(idx: number, length: number, type: number): boolean {
    const me = this.marker();
    if (!this.lock(me, false)) return false;
    try {
      const lengthIndex = this.ring.lengthIndex(idx);
      if (Atomics.load(this.ring.i32, lengthIndex) === length && Atomics.load(this.ring.i32, lengthIndex + 1) === type)
        finishAsPadding(this.ring, idx, -length);
      return true;
    } finally {
      Atomics.compareExchange(this.ring.i32, LOCK, me, 0);
    }
  }

  private lock(me: number, takeOver: boolean): boolean {
    const i32 = this.ring.i32;
    const held = Atomics.compareExchange(i32, LOCK, 0, me);
    if (held === 0) return true;
    if (!takeOver || (held !== me && markerAlive(this.ring, held))) return false;
    return Atomics.compareExchange(i32, LOCK, held, me) === held;
  }

  /** `needRoom`: a producer without room, which also clears dead producers' claims on its way. */
  private releaseLocked(makePlan: (head: number, tail: number) => ReleasePlan, needRoom: boolean): boolean {
    const { i32, capacity, mask } = this.ring;
    const head = loadWord(i32, HEAD) >>> 0;
    const releasing = loadWord(i32, RELEASING) >>> 0;
    const tail = Atomics.load(i32, TAIL) >>> 0;
    const used = (tail - head) >>> 0;
    if (used > capacity || (head & 7) !== 0) throw new CorruptRing(`a head of ${head} with the tail at ${tail}`);
    // A holder that died while zeroing left RELEASING ahead of the head: what lies
    // between is half zeroed, so the walk starts at RELEASING and releases it too.
    // One off a record boundary no holder wrote: the walk starts at the head.
    const start = (releasing - head) >>> 0 <= used && (releasing & 7) === 0 ? releasing : head;
    const plan = makePlan(head, tail);
    let bound = (plan.bound - head) >>> 0 <= used ? plan.bound : head;
    if ((bound - head) >>> 0 < (start - head) >>> 0) bound = start;
    const boundaries = this.boundaries;
    boundaries.clear();
    // The dead holder's range [head, start) is whole if it died before zeroing, maybe
    // before pushing every subscriber: its records are counted for those still in it
    // (in the lost counts only, as in C: the counters below cover [start, at)).
    if (start !== head) this.countWhole(head, start, plan, boundaries);
    const inherited = boundaries.data;
    let bytes = 0;
    let at = start;
    while (at !== bound) {
      const idx = at & mask;
      const lengthIndex = this.ring.lengthIndex(idx);
      const length = Atomics.load(i32, lengthIndex);
      const type = Atomics.load(i32, lengthIndex + 1);
      if (length < 0 && type === L.RECORD_PADDING) {
        // a wrapped claim whose record at 0 is committed: finish its padding
        Atomics.compareExchange(i32, lengthIndex, length, Math.min(-length, capacity - idx));
        continue;
      }
      if (length < 0 && needRoom && (type & L.CLAIM_FLAG) !== 0 && -length <= capacity && !markerAlive(this.ring, type)) {
        finishAsPadding(this.ring, idx, -length);
        continue;
      }
      if (length <= 0) break;
      checkRecord(this.ring, idx, length, type);
      const step = type === L.RECORD_PADDING ? length : align8(length);
      if ((at + step - head) >>> 0 > (bound - head) >>> 0 || !plan.passes(type)) break;
      const counted = plan.counts(type);
      boundaries.add(at, counted);
      if (counted) bytes += length - L.RECORD_HEADER;
      at = (at + step) >>> 0;
      if (plan.room !== 0 && capacity - ((tail - at) >>> 0) >= plan.room) break;
    }
    if (at === head) return false;
    Atomics.store(i32, RELEASING, at | 0);
    plan.beforeZeroing?.(head, at, boundaries);
    for (let from = head; from !== at; ) {
      const idx = from & mask;
      const chunk = Math.min((at - from) >>> 0, capacity - idx);
      zero(this.ring, idx, idx + chunk);
      from = (from + chunk) >>> 0;
    }
    addCounter(i32, L.OFF_RECV_MESSAGES >> 2, boundaries.data - inherited);
    addCounter(i32, L.OFF_RECV_BYTES >> 2, bytes);
    Atomics.store(i32, HEAD, at | 0);
    wakeArmed(this.ring, L.WAIT_SPACE);
    return true;
  }

  /**
   * Adds the records of [from, to), left by a holder that died, to `boundaries`
   * (empty so far); none when a header there is not whole (the holder died while
   * zeroing, after it had pushed every subscriber past them).
   */
  private countWhole(from: number, to: number, plan: ReleasePlan, boundaries: Boundaries): void {
    const { i32, mask } = this.ring;
    const span = (to - from) >>> 0;
    for (let at = from; at !== to; ) {
      const idx = at & mask;
      const lengthIndex = this.ring.lengthIndex(idx);
      const length = Atomics.load(i32, lengthIndex);
      const type = Atomics.load(i32, lengthIndex + 1);
      const step = type === L.RECORD_PADDING ? length : align8(length);
      if (length <= 0 || !recordFits(this.ring, idx, length, type) || (at + step - from) >>> 0 > span) return boundaries.clear();
      boundaries.add(at, plan.counts(type));
      at = (at + step) >>> 0;
    }
  }
}
