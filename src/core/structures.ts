// The shared record structures of a channel created with { records: true }: the
// numbered key lists that msgpackr's record extension refers to, kept in the
// segment's header so that every process on the channel, and a successor of any
// of them, decodes the same ids. The table's format and protocol are in
// docs/protocol.md ("Shared record structures").
import * as L from './layout';
import { CorruptRing } from './errors';
import { claimOwner } from './ring';
import { sleepThread } from './wait';

/** Whether producer slot `slot` is held by a live handle in generation `generation` (native). */
export type ClaimantAlive = (slot: number, generation: number) => boolean;

/** How long a producer waits for a live process holding the table's lock. Writing
 * the table takes microseconds, so this only ends a wait on a stuck writer. */
const LOCK_WAIT_MS = 1000;

export class SharedStructures {
  private readonly i32: Int32Array;
  private readonly table: Buffer;
  /** This handle's claim marker once it produces (see claimOwner). */
  private marker = 0;
  /** Set once an entry did not fit: from then on new key lists are not shared
   * (msgpackr then defines them inside each message that uses them). */
  private full = false;

  constructor(
    buffer: ArrayBuffer,
    private readonly claimantAlive: ClaimantAlive,
  ) {
    this.i32 = new Int32Array(buffer, 0, L.HEADER_SIZE >> 2);
    this.table = Buffer.from(buffer, L.OFF_STRUCTURES, L.STRUCTURES_SIZE);
  }

  /** Called when this handle takes the producer role, with its claim marker, before it encodes. */
  producerClaimed(marker: number): void {
    this.marker = marker;
  }

  /** Bytes of the table published so far; it only grows. */
  publishedLength(): number {
    return Atomics.load(this.i32, L.OFF_STRUCTURES_LENGTH >> 2);
  }

  /** The published structures, checked: the table is shared memory. */
  load(): string[][] {
    return this.read().structures;
  }

  /** The published structures and the table length they were read up to: the
   * length word is read once, and only the value checked here is used after. */
  private read(): { structures: string[][]; length: number } {
    const length = Atomics.load(this.i32, L.OFF_STRUCTURES_LENGTH >> 2);
    if (length < 0 || length > L.STRUCTURES_SIZE) throw new CorruptRing(`a record structure table of ${length} bytes`);
    const structures: string[][] = [];
    const table = this.table;
    let at = 0;
    while (at < length) {
      if (structures.length === L.MAX_STRUCTURES || at + 2 > length) throw new CorruptRing('a damaged record structure table');
      const count = table.readUInt16LE(at);
      at += 2;
      const keys: string[] = [];
      for (let k = 0; k < count; k++) {
        if (at + 2 > length) throw new CorruptRing('a damaged record structure table');
        const size = table.readUInt16LE(at);
        at += 2;
        if (at + size > length) throw new CorruptRing('a damaged record structure table');
        keys.push(table.toString('utf8', at, at + size));
        at += size;
      }
      structures.push(keys);
    }
    return { structures, length };
  }

  /** msgpackr's shouldShareStructure: share new key lists only while the table has room. */
  shouldShare(): boolean {
    return !this.full;
  }

  /**
   * msgpackr's saveStructures: appends the structures this producer added, unless
   * another producer appended first (isCompatible says so), in which case msgpackr
   * merges theirs and encodes the message again.
   */
  save(structures: string[][], isCompatible: (existing: string[][]) => boolean): boolean {
    this.lock();
    try {
      const { structures: existing, length: published } = this.read();
      if (!isCompatible(existing)) return false;
      let length = published;
      for (let s = existing.length; s < structures.length; s++) {
        const end = this.write(structures[s], length);
        if (end < 0) {
          this.full = true; // msgpackr encodes again, without sharing the new key lists
          return false;
        }
        length = end;
      }
      Atomics.store(this.i32, L.OFF_STRUCTURES_LENGTH >> 2, length);
      return true;
    } finally {
      Atomics.compareExchange(this.i32, L.OFF_STRUCTURES_LOCK >> 2, this.marker, 0);
    }
  }

  /** Writes one entry at `at` (past the published length); its end, or -1 when it does not fit. */
  private write(keys: string[], at: number): number {
    const table = this.table;
    if (keys.length > 0xffff || at + 2 > table.length) return -1;
    table.writeUInt16LE(keys.length, at);
    at += 2;
    for (const key of keys) {
      const size = Buffer.byteLength(key);
      if (size > 0xffff || at + 2 + size > table.length) return -1;
      table.writeUInt16LE(size, at);
      table.write(key, at + 2, 'utf8');
      at += 2 + size;
    }
    return at;
  }

  private lock(): void {
    if (this.marker === 0) throw new Error('record structures are written only by a producer');
    const index = L.OFF_STRUCTURES_LOCK >> 2;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      const held = Atomics.compareExchange(this.i32, index, 0, this.marker);
      if (held === 0) return;
      const { slot, generation } = claimOwner(held);
      // A writer that died holding the lock left at most unpublished bytes: take over.
      if ((held & L.CLAIM_FLAG) === 0 || held === this.marker || !this.claimantAlive(slot, generation)) {
        if (Atomics.compareExchange(this.i32, index, held, this.marker) === held) return;
        continue;
      }
      if (Date.now() > deadline) throw new CorruptRing(`the record structure table stays locked by producer slot ${slot}`);
      if (attempt > 100) sleepThread(1);
    }
  }
}
