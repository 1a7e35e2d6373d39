// What the NATS bridge needs from a channel beyond send/receive, built on the
// core's internal accessor. A relaying consumer looks at a message, hands it on,
// and consumes it only once it is safe elsewhere; a relaying producer keeps a
// checkpoint in its producer slot that says which numbered message the ring
// holds last. Both survive SIGKILL: see "Relaying consumers and producers" in
// docs/protocol.md. On 'broadcast' and 'mpmc' channels the relaying consumer is
// one subscriber or one competing consumer (FanoutRelay).
import * as L from '../core/layout';
import type { Channel } from '../core/channel';
import { BroadcastReader } from '../core/broadcast';
import { CorruptRing, Lagged, incompatible, invalidArg } from '../core/errors';
import type { FoundRecord } from '../core/mpsc';
import { channelInternals, type ChannelInternals } from '../core/internals';
import { MpmcReader } from '../core/mpmc';
import type { MpscReader } from '../core/mpsc';
import { EMPTY, ENDED, align8, producerEntry, recoverHeadPosition, type PeekedRecord, type RingMemory } from '../core/ring';
import type { SpscReader } from '../core/spsc';

export { EMPTY, ENDED, type PeekedRecord };

type RelayHooks = Pick<ChannelInternals, 'live' | 'error' | 'waitUntil'>;

/** A message looked at and not consumed yet: a copy of its bytes, and its position. */
export interface RelayedMessage {
  bytes: Buffer;
  position: bigint;
}

/** What the sending bridge uses, whatever the channel's mode. */
export interface Relay {
  /** The next message after those already handed out, not consumed yet. */
  next(): RelayedMessage | typeof EMPTY | typeof ENDED;
  /** Messages handed out and not yet consumed. */
  readonly pending: number;
  /** Consumes the oldest message handed out. */
  commit(): void;
  /** The next next() starts again at the oldest unconsumed message. */
  rewind(): void;
  /** Resolves when a message (or the end) follows those handed out. */
  waitForMore(signal?: AbortSignal): Promise<void>;
  /** A Nats-Msg-Id for the message at `position`, or for the end marker. */
  messageId(position: bigint | 'end'): string;
  /** Messages a 'broadcast' 'overwrite' channel overwrote before this relay read them. */
  readonly lost: number;
}

/** Takes the channel's consumer role (spsc, mpsc), or one consumer slot (mpmc,
 * broadcast); messages are looked at first and consumed later. */
export function relayConsumer<T>(channel: Channel<T>): Relay {
  const internals = relayable(channel);
  const reader = internals.consumer();
  if (reader instanceof MpmcReader || reader instanceof BroadcastReader) return fanoutRelay(internals, reader);
  return new RelayConsumer(reader, internals.ring, internals);
}

/** Takes the producer role of an spsc channel; sends still go through send(). */
export function relayProducer<T>(channel: Channel<T>): RelayProducer {
  const internals = relayable(channel);
  if (internals.mode !== 'spsc') throw invalidArg(`channel '${internals.name}' is ${internals.mode}; a relaying producer needs an spsc channel`);
  return new RelayProducer(internals.ring, internals.producer(), internals);
}

/** Relayed bytes leave the segment, and records mean nothing without its structures. */
function relayable<T>(channel: Channel<T>): ChannelInternals {
  const internals = channel[channelInternals]();
  if (internals.records)
    throw incompatible(
      `channel '${internals.name}' carries msgpackr records, which only decode with its own shared structures; bridge a channel created without { records: true }`,
    );
  return internals;
}

/** Names this channel instance (creation time and creator), so that a name reused
 * for a new channel gives new message ids. */
function channelOrigin(ring: RingMemory): string {
  const header = new BigUint64Array(ring.i32.buffer, 0, L.HEADER_SIZE >> 3);
  const created = header[L.OFF_CREATED_MS >> 3];
  const creator = header[L.OFF_CREATOR >> 3];
  return `${created.toString(36)}.${creator.toString(36)}`;
}

export class RelayConsumer implements Relay {
  /** Never anything in spsc and mpsc: the producers wait for this consumer. */
  readonly lost = 0;
  private readonly idPrefix: string;
  /** Ring position after the last message peeked. */
  private cursor: number;
  /** 64-bit position of the head (the oldest unconsumed message). */
  private headPosition: bigint;
  private readonly peeked: PeekedRecord[] = [];

  constructor(
    private readonly reader: SpscReader | MpscReader,
    private readonly ring: RingMemory,
    private readonly hooks: RelayHooks & { name: string },
  ) {
    const name = hooks.name;
    this.cursor = reader.headIndex;
    this.headPosition = recoverHeadPosition(ring, reader.headIndex);
    this.idPrefix = `${name}@${channelOrigin(ring)}`;
  }

  /** The same for a message from any handle, across crashes: the position names it. */
  messageId(position: bigint | 'end'): string {
    return `${this.idPrefix}:${position}`;
  }

  /** The next message after those already peeked, as a copy of its bytes with its
   * stable id: the 64-bit ring position where it starts. Not consumed yet. */
  next(): { bytes: Buffer; position: bigint } | typeof EMPTY | typeof ENDED {
    this.hooks.live();
    let record: PeekedRecord | typeof EMPTY | typeof ENDED;
    try {
      record = this.reader.peek(this.cursor);
    } catch (error) {
      throw this.hooks.error(error);
    }
    if (record === EMPTY || record === ENDED) return record;
    // where the payload's record starts (after any padding), as a 64-bit position
    const start = record.next - alignedRecordSize(record);
    const position = this.headPosition + BigInt((start - this.reader.headIndex) >>> 0);
    this.peeked.push(record);
    this.cursor = record.next;
    return { bytes: Buffer.from(this.ring.bytes.subarray(record.start, record.end)), position };
  }

  /** Messages peeked and not yet consumed. */
  get pending(): number {
    return this.peeked.length;
  }

  /** Consumes the oldest peeked message. */
  commit(): void {
    this.hooks.live();
    const record = this.peeked.shift();
    if (record === undefined) throw new Error('commit() without a peeked message');
    const position = this.headPosition + BigInt((record.next - this.reader.headIndex) >>> 0);
    try {
      this.reader.commit(record, position);
    } catch (error) {
      throw this.hooks.error(error);
    }
    this.headPosition = position;
  }

  /** Forgets the peeked messages: the next next() starts again at the oldest unconsumed one. */
  rewind(): void {
    this.peeked.length = 0;
    this.cursor = this.reader.headIndex;
  }

  /** Resolves when a message (or the end) follows the peeked ones. */
  waitForMore(signal?: AbortSignal): Promise<void> {
    return this.hooks.waitUntil(() => this.reader.peek(this.cursor) !== EMPTY, signal);
  }
}

const alignedRecordSize = (record: PeekedRecord) => (record.end - record.start + L.RECORD_HEADER + 7) & ~7;

export interface Checkpoint {
  /** Source sequence of the last message known to be in the ring (0: none). */
  sequence: number;
  /** A tag naming the source the sequences belong to. */
  source: number;
}

/**
 * The checkpoint of an SPSC channel's producer. The protocol, per message:
 * beginSend(seq), send it, endSend(seq). recover() tells, after a crash, the
 * sequence of the last message the ring holds.
 */
export class RelayProducer {
  private readonly big: BigUint64Array;
  private readonly u32: Uint32Array;
  private readonly seqIndex: number;
  private readonly inFlightIndex: number;
  private readonly tailIndex: number;
  private readonly sourceIndex: number;

  constructor(
    ring: RingMemory,
    slot: number,
    private readonly hooks: Pick<RelayHooks, 'live'>,
  ) {
    const entry = producerEntry(slot);
    this.big = new BigUint64Array(ring.i32.buffer, 0, L.HEADER_SIZE >> 3);
    this.u32 = new Uint32Array(ring.i32.buffer, 0, L.HEADER_SIZE >> 2);
    this.seqIndex = (entry + L.PRODUCER_CHECKPOINT_SEQ) >> 3;
    this.inFlightIndex = (entry + L.PRODUCER_IN_FLIGHT_SEQ) >> 3;
    this.tailIndex = (entry + L.PRODUCER_CHECKPOINT_TAIL) >> 2;
    this.sourceIndex = (entry + L.PRODUCER_CHECKPOINT_SOURCE) >> 2;
  }

  private tail(): number {
    return Atomics.load(this.u32, L.OFF_TAIL >> 2);
  }

  /**
   * Call after taking the producer role (whose recovered tail counts a record a
   * dead predecessor committed but did not publish). If the ring's tail is past
   * the checkpoint's and a message was in flight, that message was committed:
   * the checkpoint moves to it. A checkpoint of another source starts over at 0.
   */
  recover(source: number): Checkpoint {
    this.hooks.live();
    if (Atomics.load(this.u32, this.sourceIndex) !== source >>> 0) {
      this.store(0n, this.tail());
      Atomics.store(this.big, this.inFlightIndex, 0n);
      Atomics.store(this.u32, this.sourceIndex, source >>> 0);
      return { sequence: 0, source };
    }
    const sequence = Atomics.load(this.big, this.seqIndex);
    const inFlight = Atomics.load(this.big, this.inFlightIndex);
    if (inFlight > sequence && this.tail() !== Atomics.load(this.u32, this.tailIndex)) {
      this.store(inFlight, this.tail());
      return { sequence: Number(inFlight), source };
    }
    return { sequence: Number(sequence), source };
  }

  /** Before sending the message numbered `sequence`. */
  beginSend(sequence: number): void {
    this.hooks.live();
    Atomics.store(this.big, this.inFlightIndex, BigInt(sequence));
  }

  /** After its send returned: it is in the ring. Also for a message that moves no
   * tail (the end of the stream), which is then idempotent to repeat. */
  endSend(sequence: number): void {
    this.hooks.live();
    this.store(BigInt(sequence), this.tail());
  }

  /** The sequence first, the tail second: a crash in between leaves a checkpoint
   * whose sequence already names the message, which is what recover() needs. */
  private store(sequence: bigint, tail: number): void {
    Atomics.store(this.big, this.seqIndex, sequence);
    Atomics.store(this.u32, this.tailIndex, tail);
  }
}

/** A message a fan-out relay took, kept (bytes copied) until it is consumed. */
interface Taken extends RelayedMessage {
  record: FoundRecord;
  /** Ring position after the record. */
  after: number;
}

/** How a fan-out relay takes and consumes records: one subscriber, or one competing consumer. */
interface FanoutSource {
  take(): Omit<Taken, 'position'> | typeof EMPTY | typeof ENDED;
  consume(taken: Taken): void;
}

/** The handle's consumer slot of an 'mpmc' or 'broadcast' channel (a subscriber
 * from where the handle's `from` says), as a relay. */
function fanoutRelay(internals: ChannelInternals, reader: MpmcReader | BroadcastReader): FanoutRelay {
  const { ring, name } = internals;
  // unique to this subscription or consumer: its ids are never those of another one
  const session = `${channelOrigin(ring)}.${reader.slot}.${process.pid.toString(36)}.${Date.now().toString(36)}`;
  if (reader instanceof MpmcReader) return new FanoutRelay(new MpmcSource(reader, ring), internals, `${name}@${session}:m`);
  const held: Taken[] = [];
  return new FanoutRelay(new BroadcastSource(reader, ring, held), internals, `${name}@${session}:`, held);
}

/**
 * A relay over a fan-out consumer slot. It copies each message as it takes it and
 * keeps the copies until they are consumed, so that rewind() hands out the same
 * messages (same bytes, same ids) again: in 'mpmc' they stay taken meanwhile, and
 * no other consumer gets them; in 'broadcast' an overwrite cannot change them.
 * Positions are 64-bit within this relay's life only (fan-out modes keep no
 * 64-bit head), so ids name this subscription or consumer: a restarted bridge is
 * a new one.
 */
export class FanoutRelay implements Relay {
  /** Handed out after a rewind up to here. */
  private replayed = 0;
  private lookahead: Omit<Taken, 'position'> | typeof ENDED | undefined;
  private last32 = -1;
  private last64 = 0n;

  constructor(
    private readonly source: FanoutSource & { lost?: number },
    private readonly hooks: RelayHooks,
    private readonly idPrefix: string,
    private readonly held: Taken[] = [],
  ) {}

  get lost(): number {
    return this.source.lost ?? 0;
  }

  get pending(): number {
    return this.held.length;
  }

  messageId(position: bigint | 'end'): string {
    return position === 'end' ? `${this.idPrefix.replace(/:m?$/, '')}:end` : `${this.idPrefix}${position}`;
  }

  next(): RelayedMessage | typeof EMPTY | typeof ENDED {
    this.hooks.live();
    if (this.replayed < this.held.length) return this.held[this.replayed++];
    const taken = this.lookahead ?? this.take();
    this.lookahead = undefined;
    if (taken === EMPTY || taken === ENDED) return taken;
    const message = { ...taken, position: this.extend(taken.record.position) };
    this.held.push(message);
    this.replayed = this.held.length;
    return message;
  }

  commit(): void {
    this.hooks.live();
    const taken = this.held[0];
    if (taken === undefined) throw new Error('commit() without a message handed out');
    try {
      this.source.consume(taken);
    } catch (error) {
      throw this.hooks.error(error);
    }
    this.held.shift();
    this.replayed = Math.max(0, this.replayed - 1);
  }

  rewind(): void {
    this.replayed = 0;
  }

  waitForMore(signal?: AbortSignal): Promise<void> {
    return this.hooks.waitUntil(() => {
      if (this.replayed < this.held.length || this.lookahead !== undefined) return true;
      const taken = this.take();
      if (taken === EMPTY) return false;
      this.lookahead = taken; // taken already (mpmc): next() hands it out
      return true;
    }, signal);
  }

  private take(): Omit<Taken, 'position'> | typeof EMPTY | typeof ENDED {
    try {
      return this.source.take();
    } catch (error) {
      throw this.hooks.error(error);
    }
  }

  /** The 64-bit position of a ring position: the nearest to the last one (mpmc takes
   * a record given back by a dead consumer after later ones). */
  private extend(position: number): bigint {
    this.last64 = this.last32 < 0 ? (1n << 32n) + BigInt(position) : this.last64 + BigInt((position - this.last32) | 0);
    this.last32 = position;
    return this.last64;
  }
}

/** 'mpmc': a record taken stays taken (no other consumer gets it) until consumed. */
class MpmcSource implements FanoutSource {
  constructor(
    private readonly reader: MpmcReader,
    private readonly ring: RingMemory,
  ) {}

  take(): Omit<Taken, 'position'> | typeof EMPTY | typeof ENDED {
    const record = this.reader.take();
    if (record === EMPTY || record === ENDED) return record;
    return copied(this.ring, record);
  }

  consume(taken: Taken): void {
    this.reader.consume(taken.record);
  }
}

/**
 * 'broadcast': reads ahead of its cursor and moves it on commit. Under 'overwrite'
 * a producer may push the cursor past records: a copy is kept only if the cursor
 * had not been pushed when it was made; records pushed past before they were
 * copied are counted in `lost`.
 */
class BroadcastSource implements FanoutSource {
  lost = 0;
  /** Where the next record is looked for. */
  private ahead: number;

  constructor(
    private readonly reader: BroadcastReader,
    private readonly ring: RingMemory,
    private readonly held: readonly Taken[],
  ) {
    this.ahead = reader.position;
  }

  take(): Omit<Taken, 'position'> | typeof EMPTY | typeof ENDED {
    for (;;) {
      // scan only from where nothing was overwritten: a cursor not pushed means no release passed it
      if (this.reader.overwrite && this.pushed()) continue;
      let record: FoundRecord | typeof EMPTY | typeof ENDED;
      try {
        record = this.reader.peek(this.ahead);
      } catch (error) {
        // what looked corrupt may have been overwritten under the scan
        if (error instanceof CorruptRing && this.reader.overwrite && this.pushed()) continue;
        throw error;
      }
      if (record === EMPTY || record === ENDED) {
        // padding before the tail: step over it once nothing is held before it, or
        // a producer under 'block' could wait for this cursor forever
        const scanned = this.reader.scanned;
        if (this.held.length === 0 && scanned !== this.reader.position && !this.moveTo(scanned)) continue;
        if (this.held.length === 0) this.ahead = this.reader.position;
        return record;
      }
      const taken = copied(this.ring, record);
      if (this.reader.overwrite && this.pushed()) continue;
      this.ahead = taken.after;
      return taken;
    }
  }

  consume(taken: Taken): void {
    while (!this.moveTo(taken.after));
  }

  /** Moves the cursor to `to`, unless a push took it there or past: false when pushed short of it. */
  private moveTo(to: number): boolean {
    const before = this.reader.position;
    const distance = (to - before) >>> 0;
    if (distance === 0 || distance > this.ring.capacity) return true; // pushed there or past already
    let missed = 0;
    try {
      if (this.reader.advance(to)) return true;
    } catch (error) {
      if (!(error instanceof Lagged)) throw error;
      missed = error.lost;
    }
    this.account(before, missed);
    return false;
  }

  /** Under 'overwrite': whether a producer pushed the cursor since it was last looked at. */
  private pushed(): boolean {
    const before = this.reader.position;
    let missed = 0;
    try {
      if (!this.reader.wasPushed()) return false;
    } catch (error) {
      if (!(error instanceof Lagged)) throw error;
      missed = error.lost;
    }
    this.account(before, missed);
    return true;
  }

  /** After a push from `before` that skipped `missed` records: those held (copied
   * intact) were not lost; reading goes on from the new cursor if it passed `ahead`. */
  private account(before: number, missed: number): void {
    const span = (this.reader.position - before) >>> 0;
    const kept = this.held.filter((taken) => ((taken.record.position - before) >>> 0) < span).length;
    this.lost += Math.max(0, missed - kept);
    if (((this.ahead - before) >>> 0) < span) this.ahead = this.reader.position;
  }
}

/** The record's payload, copied out of the ring. */
function copied(ring: RingMemory, record: FoundRecord): Omit<Taken, 'position'> {
  const start = record.idx + L.RECORD_HEADER;
  return { bytes: Buffer.from(ring.bytes.subarray(start, record.idx + record.length)), record, after: (record.position + align8(record.length)) >>> 0 };
}
