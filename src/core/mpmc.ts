// The MPMC consumer (a work queue): competing consumers take committed records by
// a CAS of the record's type word to their own marker, decode, then mark the
// record consumed; the head passes consumed records whichever consumer took them.
// A record taken by a consumer that died is given back for another to take. The
// protocol is described in docs/protocol.md ("Fan-out").
import * as L from './layout';
import type { Decoder } from './codec';
import { CorruptRing, DecodeFailure } from './errors';
import { Releaser, consumerMarker, consumerWords, isConsumerMarker, isDataType, markerAlive, type ReleasePlan } from './fanout';
import { RecordScanner, STEP, STOP, type FoundRecord } from './mpsc';
import { EMPTY, ENDED, decodePayload, type RingMemory, wakeArmed } from './ring';

const HEAD = L.OFF_HEAD >> 2;
const RELEASING = L.OFF_RELEASING >> 2;
/** Releases a consumer attempts while consumed records wait at the head. */
const RELEASE_TURNS = 64;
/** How often an idle consumer asks whether the consumers of records still taken live. */
const DEAD_TAKER_CHECK_MS = 1;

/** The MPMC release plan: one object, for a release is made per message. */
const consumed: ReleasePlan = {
  passes: (type) => type === L.RECORD_PADDING || type === L.RECORD_CONSUMED,
  counts: (type) => type === L.RECORD_CONSUMED,
  bound: 0,
  room: 0,
};

/** What the head may pass in MPMC: padding and consumed records, up to the tail. */
export function consumedPlan(_head: number, tail: number): ReleasePlan {
  consumed.bound = tail;
  return consumed;
}

/** Two words laid over one 64-bit word, as a record's length and type words lie
 * over its header in the ring: a header built here is the one the ring holds, in
 * either byte order, and building it allocates only the bigint read. */
const headerWord = new BigInt64Array(1);
const headerWords = new Int32Array(headerWord.buffer);

/** A record's 8-byte header as one word: the length, then the type. */
function recordHeader(length: number, type: number): bigint {
  headerWords[0] = length;
  headerWords[1] = type;
  return headerWord[0];
}

export class MpmcReader {
  private readonly marker: number;
  private readonly releaser: Releaser;
  private readonly scanner: RecordScanner;
  private readonly headers: BigInt64Array;
  private lastTakerCheck = 0;
  /** The records other consumers held when the last scan met them: the first
   * `takenCount` entries (the array is kept from scan to scan). */
  private readonly taken: FoundRecord[] = [];
  private takenCount = 0;
  /** take()'s scan: stops at the first data record nobody holds, noting the held ones. */
  private readonly untaken = (type: number, idx: number, length: number, position: number): number => {
    if (type === L.RECORD_PADDING || type === L.RECORD_CONSUMED) return STEP;
    if (isConsumerMarker(type)) {
      this.taken[this.takenCount++] = { idx, length, type, position };
      return STEP;
    }
    if (!isDataType(type)) throw new CorruptRing(`a record of type ${type} at ${idx}`);
    return STOP;
  };

  constructor(
    private readonly ring: RingMemory,
    readonly slot: number,
  ) {
    this.marker = consumerMarker(slot, Atomics.load(ring.i32, consumerWords(slot).generation));
    this.releaser = new Releaser(ring, () => this.marker);
    this.scanner = new RecordScanner(ring, { finishDeadClaim: (idx, length, type) => this.releaser.finishDeadClaim(idx, length, type) });
    this.headers = new BigInt64Array(ring.i32.buffer, 0, ring.i32.length >> 1);
  }

  get waitingOnClaim(): boolean {
    return this.scanner.waitingOnClaim;
  }

  /** The type word of the record a holding decoder answered last (its view is
   * still in use, the record still taken by this consumer); -1: none. */
  private heldTypeIndex = -1;

  /**
   * Set by a consumer that answers each message it takes (a service's worker
   * sends a reply): the release of what it consumed, which would be on the round
   * trip's path, waits until it calls finishRelease (after the answer) or reads
   * again. Meanwhile the record is consumed (type 3), and any release passes it:
   * another consumer's, or a producer's that needs the room.
   */
  deferRelease = false;
  /** A record this consumer consumed waits for its release (deferRelease). */
  private releaseDue = false;

  /** Releases what this consumer consumed last, if that is still due. */
  finishRelease(): void {
    if (!this.releaseDue) return;
    this.releaseDue = false;
    this.releaseConsumed();
  }

  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    this.releaseHeld();
    this.finishRelease();
    const found = this.take();
    if (found === EMPTY || found === ENDED) return found;
    const typeIndex = this.ring.lengthIndex(found.idx) + 1;
    let value: T | DecodeFailure;
    try {
      value = decodePayload(codec, this.ring, found.idx + L.RECORD_HEADER, found.idx + found.length);
    } catch (error) {
      // left unread (a buffer too small, damaged structures): the record goes back
      Atomics.compareExchange(this.ring.i32, typeIndex, this.marker, found.type);
      throw error;
    }
    if (codec.holds === true && !(value instanceof DecodeFailure)) {
      // a view of the record: it stays taken (and the head before it) until the next read
      this.heldTypeIndex = typeIndex;
      return value;
    }
    Atomics.store(this.ring.i32, typeIndex, L.RECORD_CONSUMED);
    if (this.deferRelease) this.releaseDue = true;
    else this.releaseConsumed();
    if (value instanceof DecodeFailure) throw value;
    return value;
  }

  /** Consumes the record a holding decoder answered last, if it is still held. */
  releaseHeld(): void {
    const typeIndex = this.heldTypeIndex;
    if (typeIndex < 0) return;
    this.heldTypeIndex = -1;
    Atomics.store(this.ring.i32, typeIndex, L.RECORD_CONSUMED);
    this.releaseConsumed();
  }

  /**
   * Moves the head over consumed records. A consumer that finds the lock held
   * leaves the release to its holder; the holder looks at the head again after it
   * lets go, so a record consumed while it walked is not left behind.
   */
  private releaseConsumed(): void {
    const { i32, mask } = this.ring;
    for (let turn = 0; turn < RELEASE_TURNS; turn++) {
      this.releaser.release(consumedPlan, false);
      const head = Atomics.load(i32, HEAD) >>> 0;
      // a head off a record boundary (the lock's holder reports it) has no record to look at
      if (head === Atomics.load(i32, L.OFF_TAIL >> 2) >>> 0 || (head & 7) !== 0) return;
      const lengthIndex = this.ring.lengthIndex(head & mask);
      const type = Atomics.load(i32, lengthIndex + 1);
      if (Atomics.load(i32, lengthIndex) <= 0 || (type !== L.RECORD_CONSUMED && type !== L.RECORD_PADDING)) return;
    }
  }

  /** For a relay (the NATS bridge), which consumes a record only once it is safe
   * elsewhere: marks a record take() answered consumed. */
  consume(found: FoundRecord): void {
    Atomics.store(this.ring.i32, this.ring.lengthIndex(found.idx) + 1, L.RECORD_CONSUMED);
    this.releaseConsumed();
  }

  /** Takes the first committed record nobody holds, at or after the head (a relay
   * calls it directly, and consume() later). */
  take(): FoundRecord | typeof EMPTY | typeof ENDED {
    const i32 = this.ring.i32;
    for (;;) {
      const releasing = Atomics.load(i32, RELEASING) >>> 0;
      this.takenCount = 0;
      let found: FoundRecord | typeof EMPTY | typeof ENDED;
      try {
        found = this.scanner.scan(this.releaser.oldest(releasing), this.untaken);
      } catch (error) {
        // The release passed where this scan began: what it read may be zeroed or
        // written again already, so it proves nothing and the scan starts over. Only
        // what holds still is corrupt: a slow consumer, overtaken however often, is
        // never told so (it starts over only while others make progress).
        if (error instanceof CorruptRing && Atomics.load(i32, RELEASING) >>> 0 !== releasing) continue;
        throw error;
      }
      if (found === EMPTY || found === ENDED) {
        if (this.gaveBack(releasing, found === ENDED)) continue;
        return found;
      }
      // A scan overtaken by a whole lap may have read a header written a lap later,
      // or bytes of a payload where it expected a header: once the release has
      // passed the position scanned, what was read there proves nothing.
      if (this.released(releasing, found.position)) continue;
      // Length and type in one CAS: a record that was consumed, released and claimed
      // again meanwhile (a lap later) has another length, or none yet, and stays.
      const header = (this.ring.lengthIndex(found.idx) >> 1) as number;
      const expected = recordHeader(found.length, found.type);
      const mine = recordHeader(found.length, this.marker);
      if (Atomics.compareExchange(this.headers, header, expected, mine) !== expected) continue;
      // Released between the look above and the CAS, the record taken may be the one
      // written at this index a lap later: taking it would return that producer's
      // later message before an earlier one still in the ring. Give it back, look again.
      if (!this.released(releasing, found.position)) return found;
      Atomics.compareExchange(this.headers, header, mine, expected);
    }
  }

  /** Whether the release has passed `position` since it was at `start`. */
  private released(start: number, position: number): boolean {
    return ((Atomics.load(this.ring.i32, RELEASING) - start) >>> 0) > ((position - start) >>> 0);
  }

  /**
   * Gives back the records held by consumers that died (it asks the kernel: now and
   * then while the stream goes on, and always at its end, where this consumer would
   * otherwise stop while a dead consumer's message is still in the ring). Each goes
   * back by a CAS of its whole header, and only while the release has not passed
   * it: once released, its bytes may belong to a later record, payload included.
   */
  private gaveBack(start: number, ended: boolean): boolean {
    if (this.takenCount === 0) return false;
    const now = performance.now();
    if (!ended && now - this.lastTakerCheck < DEAD_TAKER_CHECK_MS) return false;
    this.lastTakerCheck = now;
    let gave = false;
    for (let i = 0; i < this.takenCount; i++) {
      const { idx, length, type, position } = this.taken[i];
      if (type === this.marker || markerAlive(this.ring, type) || this.released(start, position)) continue;
      const header = (this.ring.lengthIndex(idx) >> 1) as number;
      const expected = recordHeader(length, type);
      if (Atomics.compareExchange(this.headers, header, expected, recordHeader(length, L.RECORD_DATA)) === expected) gave = true;
    }
    if (gave) wakeArmed(this.ring, L.WAIT_DATA);
    return gave;
  }
}
