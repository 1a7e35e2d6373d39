// The MPMC consumer (a work queue): competing consumers take committed records by
// a CAS of the record's type word to their own marker, decode, then mark the
// record consumed; the head passes consumed records whichever consumer took them.
// A record taken by a consumer that died is given back for another to take. The
// protocol is described in docs/protocol.md ("Fan-out").
import * as L from './layout';
import type { Decoder } from './codec';
import { CorruptRing, DecodeFailure } from './errors';
import {
  RecordScanner,
  Releaser,
  consumerMarker,
  consumerWords,
  isConsumerMarker,
  isDataType,
  markerAlive,
  type FoundRecord,
  type ReleasePlan,
} from './fanout';
import { EMPTY, ENDED, decodePayload, type RingMemory, wakeArmed } from './ring';

const HEAD = L.OFF_HEAD >> 2;
const RELEASING = L.OFF_RELEASING >> 2;
/** Releases a consumer attempts while consumed records wait at the head. */
const RELEASE_TURNS = 64;
/** How often an idle consumer asks whether the consumers of records still taken live. */
const DEAD_TAKER_CHECK_MS = 1;
/** Scans restarted because the head moved under them, before the ring counts as corrupt. */
const RESTARTS = 64;

/** What the head may pass in MPMC: padding and consumed records. */
export function consumedPlan(_head: number, tail: number): ReleasePlan {
  return {
    passes: (type) => type === L.RECORD_PADDING || type === L.RECORD_CONSUMED,
    counts: (type) => type === L.RECORD_CONSUMED,
    bound: tail,
    room: 0,
  };
}

/** A record's 8-byte header as one little-endian word: the length, then the type. */
function recordHeader(length: number, type: number): bigint {
  return BigInt.asIntN(64, (BigInt(type) << 32n) | BigInt(length >>> 0));
}

export class MpmcReader {
  private readonly marker: number;
  private readonly releaser: Releaser;
  private readonly scanner: RecordScanner;
  private readonly headers: BigInt64Array;
  private lastTakerCheck = 0;
  /** Positions of records other consumers hold, met by the last scan. */
  private taken: number[] = [];

  constructor(
    private readonly ring: RingMemory,
    slot: number,
  ) {
    this.marker = consumerMarker(slot, Atomics.load(ring.i32, consumerWords(slot).generation));
    this.releaser = new Releaser(ring, () => this.marker);
    this.scanner = new RecordScanner(ring);
    this.headers = new BigInt64Array(ring.i32.buffer, 0, ring.i32.length >> 1);
  }

  get waitingOnClaim(): boolean {
    return this.scanner.waitingOnClaim;
  }

  /** The type word of the record a holding decoder answered last (its view is
   * still in use, the record still taken by this consumer); -1: none. */
  private heldTypeIndex = -1;

  tryRead<T>(codec: Decoder<T>): T | typeof EMPTY | typeof ENDED {
    this.releaseHeld();
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
    this.releaseConsumed();
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
      if (head === Atomics.load(i32, L.OFF_TAIL >> 2) >>> 0) return;
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
    // restarts after a scan that the release overtook (only those: a lost CAS or a
    // record given back is progress by someone else, and looks again at no cost)
    for (let restart = 0; ; ) {
      const releasing = Atomics.load(i32, RELEASING);
      const taken: number[] = [];
      let found: FoundRecord | typeof EMPTY | typeof ENDED;
      try {
        found = this.scanner.scan(this.releaser.oldest(releasing >>> 0), (type, position) => {
          if (type === L.RECORD_CONSUMED) return true;
          if (isConsumerMarker(type)) {
            taken.push(position);
            return true;
          }
          if (!isDataType(type)) throw new CorruptRing(`a record of type ${type} at ${position & this.ring.mask}`);
          return false;
        });
      } catch (error) {
        // the head moved past where this scan began: what it read may be zeroed already
        if (error instanceof CorruptRing && Atomics.load(i32, RELEASING) !== releasing && restart++ < RESTARTS) continue;
        throw error;
      }
      this.taken = taken;
      if (found === EMPTY || found === ENDED) {
        if (this.gaveBack()) continue;
        return found;
      }
      // Length and type in one CAS: a record that was consumed, released and claimed
      // again meanwhile (a lap later) has another length, or none yet, and stays.
      const header = (this.ring.lengthIndex(found.idx) >> 1) as number;
      const expected = recordHeader(found.length, found.type);
      const mine = recordHeader(found.length, this.marker);
      if (Atomics.compareExchange(this.headers, header, expected, mine) !== expected) continue;
      // A scan overtaken by a whole lap may have matched the record written at this
      // index a lap later (same length, same producer): taking it would return that
      // producer's later message before an earlier one still in the ring. The release
      // cursor tells: once it has passed the position scanned, give the record back
      // and look again.
      const start = releasing >>> 0;
      if (((Atomics.load(i32, RELEASING) - start) >>> 0) <= ((found.position - start) >>> 0)) return found;
      Atomics.compareExchange(this.headers, header, mine, expected);
    }
  }

  /** Gives back the records held by consumers that died (now and then: it asks the kernel). */
  private gaveBack(): boolean {
    if (this.taken.length === 0) return false;
    const now = performance.now();
    if (now - this.lastTakerCheck < DEAD_TAKER_CHECK_MS) return false;
    this.lastTakerCheck = now;
    const i32 = this.ring.i32;
    let gave = false;
    for (const position of this.taken) {
      const typeIndex = this.ring.lengthIndex(position & this.ring.mask) + 1;
      const holder = Atomics.load(i32, typeIndex);
      if (!isConsumerMarker(holder) || holder === this.marker || markerAlive(this.ring, holder)) continue;
      if (Atomics.compareExchange(i32, typeIndex, holder, L.RECORD_DATA) === holder) gave = true;
    }
    if (gave) wakeArmed(this.ring, L.WAIT_DATA);
    return gave;
  }
}
