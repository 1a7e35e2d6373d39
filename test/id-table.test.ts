// IdTable, the table of a client's requests in flight and of a worker's calls:
// random adds and deletes, checked after each step against a Map. The ids come as
// a client's do (consecutive, with some left in flight for long), and also
// crowded into few slots, and past 2^32 (a hostile reply's id may be any).
import { expect, it } from 'vitest';
import { IdTable } from '../dist/core/id-table.js';
import { rng } from './fixtures/rng.mjs';

interface Entry {
  id: number;
  value: number;
}

function check(table: IdTable<Entry>, model: Map<number, Entry>, probes: number[]): void {
  expect(table.size).toBe(model.size);
  for (const id of probes) {
    expect(table.get(id)).toBe(model.get(id));
    expect(table.has(id)).toBe(model.has(id));
  }
  expect(table.values().sort((a, b) => a.id - b.id)).toEqual([...model.values()].sort((a, b) => a.id - b.id));
}

const idSources: Record<string, (n: number) => number> = {
  consecutive: (n) => n,
  'sharing slots': (n) => (n % 7) * 1024 + Math.floor(n / 7),
  'past 2^32': (n) => 2 ** 32 - 50 + n,
  'near 2^53': (n) => Number.MAX_SAFE_INTEGER - 5_000 + n,
};

for (const [label, idOf] of Object.entries(idSources))
  it(`matches a Map through random adds and deletes: ids ${label}`, () => {
    const random = rng(0x1d7ab1e ^ label.length);
    const table = new IdTable<Entry>();
    const model = new Map<number, Entry>();
    let next = 0;
    for (let step = 0; step < 4_000; step++) {
      // more adds than deletes at first, then fewer: the table grows, then empties out
      const adding = model.size === 0 || random.chance(step < 2_000 ? 0.6 : 0.4);
      if (adding) {
        const entry = { id: idOf(next++), value: step };
        table.add(entry);
        model.set(entry.id, entry);
      } else {
        // mostly the oldest (replies come in order), sometimes any
        const ids = [...model.keys()];
        const id = random.chance(0.7) ? ids[0] : random.pick(ids);
        table.delete(id);
        model.delete(id);
      }
      const probes = [idOf(next), idOf(Math.max(0, next - 1)), idOf(random.int(next + 1)), -1];
      check(table, model, probes);
    }
    for (const id of [...model.keys()]) {
      table.delete(id);
      model.delete(id);
    }
    check(table, model, [idOf(0), idOf(next - 1)]);
    // deleting what is not there changes nothing
    table.delete(idOf(0));
    expect(table.size).toBe(0);
  });

it('values() is a copy: deleting while walking it visits every entry once', () => {
  const table = new IdTable<Entry>();
  for (let id = 0; id < 100; id++) table.add({ id, value: id });
  const seen: number[] = [];
  for (const entry of table.values()) {
    seen.push(entry.id);
    table.delete(entry.id);
  }
  expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, id) => id));
  expect(table.size).toBe(0);
});
