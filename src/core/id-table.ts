// Entries by a numeric id, for the sets that gain and lose an entry per message: a
// client's requests in flight, a worker's calls in progress, the NATS bridge's
// publishes awaiting their acknowledgements.
//
// Not a Map or a Set. V8 stores one in a hash table that it replaces whenever
// deleted entries have used up its room, and it links each replaced table to its
// successor (for iterators in flight). Once one of those tables has reached the
// old generation (a full collection moves the live one there), each young
// collection keeps the next table alive through that link, with every entry
// still in it, and promotes it in turn: from then on, all the requests' objects
// survive their young collection, and the collector takes much of the process's
// time. Here the table is one array whose slots are overwritten in place.

/** An entry knows its own id. */
export interface Identified {
  readonly id: number;
}

const INITIAL_SLOTS = 16;

/**
 * Open addressing with linear probing on the id's low bits, and backward-shift
 * deletion (no tombstones). Ids in use at once are mostly consecutive, so each
 * usually sits in its home slot. The array doubles when it is half full.
 */
export class IdTable<T extends Identified> {
  private slots: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  private mask = INITIAL_SLOTS - 1;
  /** Entries in the table. */
  size = 0;

  get(id: number): T | undefined {
    const at = this.indexOf(id);
    return at < 0 ? undefined : this.slots[at];
  }

  has(id: number): boolean {
    return this.indexOf(id) >= 0;
  }

  /** Adds an entry whose id is not in the table. */
  add(entry: T): void {
    if ((this.size + 1) * 2 > this.slots.length) this.grow();
    this.place(entry);
    this.size++;
  }

  /** Removes the entry with this id, if there is one. */
  delete(id: number): void {
    let hole = this.indexOf(id);
    if (hole < 0) return;
    const { slots, mask } = this;
    slots[hole] = undefined;
    this.size--;
    // entries probed past the hole move back into it, so that every lookup still
    // finds its entry before the first empty slot
    for (let at = (hole + 1) & mask; ; at = (at + 1) & mask) {
      const entry = slots[at];
      if (entry === undefined) return;
      const home = entry.id & mask;
      if (((at - home) & mask) >= ((at - hole) & mask)) {
        slots[hole] = entry;
        slots[at] = undefined;
        hole = at;
      }
    }
  }

  /** The entries, in no particular order: a copy, so the caller may delete while it walks. */
  values(): T[] {
    return this.slots.filter((entry): entry is T => entry !== undefined);
  }

  private indexOf(id: number): number {
    const { slots, mask } = this;
    for (let at = id & mask; ; at = (at + 1) & mask) {
      const entry = slots[at];
      if (entry === undefined) return -1;
      if (entry.id === id) return at;
    }
  }

  private place(entry: T): void {
    const { slots, mask } = this;
    let at = entry.id & mask;
    while (slots[at] !== undefined) at = (at + 1) & mask;
    slots[at] = entry;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    this.mask = this.slots.length - 1;
    for (const entry of old) if (entry !== undefined) this.place(entry);
  }
}
