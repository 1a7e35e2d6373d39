// packPlain, the msgpack codec's own writer for plain values: its bytes must be
// exactly msgpackr's (with the codec's options), for random values and for every
// boundary between two encodings; anything else must be left to msgpackr; and it
// must never write past the end it is given. Then through real channels: values
// that are partly plain, and ones too large for the codec's own buffer.
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { Channel } from '../dist/index.js';
import { NO_ROOM, NOT_PLAIN, packPlain } from '../dist/core/plain-pack.js';
import { uniqueName } from './helpers';
import { rng } from './fixtures/rng.mjs';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

function plainBytes(value: unknown): Buffer | undefined {
  const target = Buffer.alloc(1 << 21);
  const end = packPlain(value, target, 3, target.length);
  if (end < 0) {
    expect(end, 'a value that fits is not plain').toBe(NOT_PLAIN);
    return undefined;
  }
  return target.subarray(3, end);
}

function expectSameBytes(value: unknown): void {
  const ours = plainBytes(value);
  expect(ours, 'packed as plain').toBeDefined();
  expect(Buffer.from(ours!).toString('hex')).toBe(Buffer.from(packr.pack(value)).toString('hex'));
}

const numbers = [
  0, 1, 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 1e300,
  -1, -0x1f, -0x20, -0x21, -0x7f, -0x80, -0x81, -0x7fff, -0x8000, -0x8001, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER,
  0.5, -0.5, 1 / 3, -0, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.EPSILON, 1.7e12 + 0.25, Date.now(),
];

const strings = [
  '', 'a', 'tick', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65535), 'x'.repeat(65536),
  'é', 'é'.repeat(15), 'é'.repeat(16), 'é'.repeat(40), '€', '€'.repeat(10), '€'.repeat(11), '€'.repeat(100), '€'.repeat(30000),
  '😀', '😀'.repeat(8), '😀'.repeat(40), 'a😀b', '\ud800', 'a\ud800', '\udc00b', '\ud800\ud800\udc00', 'x\udbff'.repeat(50), '\u0000\u007f\u0080\u07ff\u0800\uffff',
];

const byteArrays = [0, 1, 32, 33, 255, 256, 65535, 65536].flatMap((n) => {
  const bytes = Buffer.alloc(n + 5);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  return [bytes.subarray(3, 3 + n), new Uint8Array(bytes.buffer, bytes.byteOffset + 2, n), Buffer.from(bytes.subarray(0, n))];
});

/** A random plain value, `depth` levels deep at most. */
function randomPlain(r: ReturnType<typeof rng>, depth: number): unknown {
  switch (r.int(depth > 0 ? 10 : 7)) {
    case 0:
      return r.pick(numbers);
    case 1:
      return r.int(2 ** 32) - 2 ** 31;
    case 2:
      return (r.next() - 0.5) * 10 ** r.int(20);
    case 3:
      return r.pick(strings.filter((s) => s.length < 1000));
    case 4:
      return String.fromCharCode(...Array.from({ length: r.int(70) }, () => r.pick([r.int(0x80), r.int(0x800), r.int(0x10000)])));
    case 5:
      return r.pick([true, false, null, undefined]);
    case 6:
      return r.pick(byteArrays.filter((b) => b.length < 1000));
    case 7:
    case 8: {
      const object: Record<string, unknown> = {};
      for (let i = r.int(20); i > 0; i--) object[r.pick(['seq', 'ts', 'kind', 'payload', 'ключ', '', `k${r.int(100)}`, '😀', 'x'.repeat(r.int(80))])] = randomPlain(r, depth - 1);
      return object;
    }
    default:
      return Array.from({ length: r.pick([0, 1, 15, 16, 17, r.int(40)]) }, () => randomPlain(r, depth - 1));
  }
}

describe('packPlain', () => {
  it('writes the bytes msgpackr writes, at every boundary between two encodings', () => {
    for (const value of [...numbers, ...strings, ...byteArrays, true, false, null, undefined]) expectSameBytes(value);
    for (const length of [0, 15, 16, 0xffff, 0x10000]) expectSameBytes(Array.from({ length }, (_, i) => i & 0x7f));
    expectSameBytes({});
    expectSameBytes(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`key${i}`, i])));
    expectSameBytes([1, , 3]); // a hole: undefined, as msgpackr writes it
    expectSameBytes({ seq: 1, ts: Date.now(), kind: 'tick', payload: Buffer.alloc(64, 7) });
  });

  it('writes the bytes msgpackr writes for random plain values', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const value = randomPlain(rng(seed), 4);
      const ours = plainBytes(value);
      expect(ours, `seed ${seed}`).toBeDefined();
      expect(Buffer.compare(ours!, packr.pack(value)), `seed ${seed}`).toBe(0);
    }
  });

  it('leaves every value with something but plain data in it to msgpackr', () => {
    class Point {
      x = 1;
    }
    class List extends Array {}
    const deep: unknown[] = [];
    let inner = deep;
    for (let i = 0; i < 64; i++) inner.push((inner = []));
    const others = [
      new Map([[1, 2]]),
      new Set([1]),
      new Date(),
      new Point(),
      new List(),
      10n,
      Symbol('s'),
      () => 1,
      new Int16Array(2),
      new Float64Array(1),
      new ArrayBuffer(4),
      new DataView(new ArrayBuffer(4)),
      Object.create(null),
      { constructor: 1 },
      /x/,
      new Error('e'),
      deep,
    ];
    for (const other of others) {
      expect(plainBytes(other), String(other?.constructor?.name ?? typeof other)).toBeUndefined();
      expect(plainBytes({ before: 1, inside: [other], after: 2 })).toBeUndefined();
    }
    // 64 levels are still plain
    expect(plainBytes(deep[0])).toBeDefined();
  });

  it('never writes past the end it is given, and fails when the value does not fit', () => {
    const value = { seq: 1, text: 'x'.repeat(100), long: '€'.repeat(50), bytes: Buffer.alloc(40, 9), list: [1.5, -70000, 'é'] };
    const expected = packr.pack(value);
    const target = Buffer.alloc(expected.length + 64);
    for (let end = 8; end <= target.length; end++) {
      target.fill(0xaa);
      const written = packPlain(value, target, 8, end);
      expect(target.subarray(end).every((b) => b === 0xaa), `end ${end}`).toBe(true);
      // short of room it may give up early (msgpackr then packs it), never write a part
      if (end - 8 < expected.length || written === NO_ROOM) expect(written, `end ${end}`).toBe(NO_ROOM);
      else expect(Buffer.compare(target.subarray(8, written), expected), `end ${end}`).toBe(0);
    }
    expect(packPlain(value, target, 8, target.length)).toBe(8 + expected.length);
  });
});

describe('the msgpack codec with packPlain', () => {
  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: after a value that is not plain, the next ones go straight to msgpackr: each is walked once`, () => {
      const name = uniqueName(`plain-skip-${mode}`);
      const rx = Channel.create(name, { mode, capacity: 1 << 20 });
      const tx = Channel.open(name);
      try {
        let reads = 0;
        const notPlain = () => ({
          get counted() {
            reads++;
            return 1;
          },
          at: new Date(1_700_000_000_000),
        });
        for (let i = 0; i < 10; i++) expect(tx.trySend(notPlain())).toBe(true);
        // the first is walked by packPlain up to its Date, then packed by msgpackr
        expect(reads).toBe(11);
        for (let i = 0; i < 10; i++) expect(rx.tryReceive()).toEqual({ counted: 1, at: new Date(1_700_000_000_000) });
      } finally {
        tx.close();
        rx.close();
      }
    });

  for (const mode of ['spsc', 'mpsc', 'mpmc'] as const)
    it(`${mode}: sends plain values, values that are plain only in part, and plain values larger than its own buffer`, () => {
      const name = uniqueName(`plain-${mode}`);
      const rx = Channel.create(name, { mode, capacity: 1 << 20 });
      const tx = Channel.open(name);
      try {
        const values = [
          { seq: 1, ts: Date.now(), kind: 'tick', payload: Buffer.alloc(64, 1) },
          { plain: 'so far', then: new Date(1_700_000_000_000), map: new Map([['a', 1]]), after: [1, 2] },
          { big: 'x'.repeat(40_000), bytes: Buffer.alloc(30_000, 3) },
          [new Set([1, 2]), 'after'],
          { nothing: undefined, list: [undefined, null] },
          'é😀\ud800',
        ];
        for (const value of values) {
          expect(tx.trySend(value)).toBe(true);
          // as msgpackr alone sends it (a Map arrives as an object, a lone surrogate as U+FFFD)
          expect(rx.tryReceive()).toEqual(unpackr.unpack(packr.pack(value)));
        }
        // a function is still refused, with nothing sent
        expect(() => tx.trySend({ a: 1, f: () => 1 })).toThrow(expect.objectContaining({ code: 'ERR_ENCODE' }));
        expect(rx.tryReceive()).toBeUndefined();
      } finally {
        tx.close();
        rx.close();
      }
    });
});
