// What the NATS bridge needs from a channel beyond send/receive, built on the
// core's internal accessor. A relaying consumer looks at a message, hands it on,
// and consumes it only once it is safe elsewhere; a relaying producer keeps a
// checkpoint in its producer slot that says which numbered message the ring
// holds last. Both survive SIGKILL: see "Relaying consumers and producers" in
// docs/protocol.md.
import * as L from '../core/layout';
import type { Channel } from '../core/channel';
import { incompatible, invalidArg } from '../core/errors';
import { channelInternals, type ChannelInternals } from '../core/internals';
import type { MpscReader } from '../core/mpsc';
import { EMPTY, ENDED, producerEntry, recoverHeadPosition, type PeekedRecord, type RingMemory } from '../core/ring';
import type { SpscReader } from '../core/spsc';

export { EMPTY, ENDED, type PeekedRecord };

type RelayHooks = Pick<ChannelInternals, 'live' | 'error' | 'waitUntil'>;

/** Takes the channel's consumer role; messages are looked at first and consumed later. */
export function relayConsumer<T>(channel: Channel<T>): RelayConsumer {
  const internals = relayable(channel);
  return new RelayConsumer(internals.consumer(), internals.ring, internals);
}

/** Takes the producer role of an spsc channel; sends still go through send(). */
export function relayProducer<T>(channel: Channel<T>): RelayProducer {
  const internals = relayable(channel);
  if (internals.mode !== 'spsc') throw invalidArg(`channel '${internals.name}' is mpsc; a relaying producer needs an spsc channel`);
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

export class RelayConsumer {
  /** Ring position after the last message peeked. */
  private cursor: number;
  /** 64-bit position of the head (the oldest unconsumed message). */
  private headPosition: bigint;
  private readonly peeked: PeekedRecord[] = [];

  constructor(
    private readonly reader: SpscReader | MpscReader,
    private readonly ring: RingMemory,
    private readonly hooks: RelayHooks,
  ) {
    this.cursor = reader.headIndex;
    this.headPosition = recoverHeadPosition(ring, reader.headIndex);
  }

  /** Names this channel instance (creation time and creator), so that a name reused
   * for a new channel gives new message ids. */
  get origin(): string {
    const header = new BigUint64Array(this.ring.i32.buffer, 0, L.HEADER_SIZE >> 3);
    const created = header[L.OFF_CREATED_MS >> 3];
    const creator = header[L.OFF_CREATOR >> 3];
    return `${created.toString(36)}.${creator.toString(36)}`;
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
