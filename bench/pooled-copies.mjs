// node bench/pooled-copies.mjs: what a received byte array costs to make. A Buffer
// made by Uint8Array.prototype.slice (what a raw receive and msgpackr's copyBuffers
// used to do) against Buffer.allocUnsafe and a copy (Node's pool below 4 KiB), by
// size; then msgpackr decoding { seq, ts, kind, payload } from a plain Buffer and
// from a source whose slice() answers Buffer.allocUnsafe, as shmchan's codec does.
import { Packr, Unpackr } from 'msgpackr';

function best(label, count, fn) {
  for (let i = 0; i < count / 5; i++) fn(i);
  let min = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) fn(i);
    min = Math.min(min, Number(process.hrtime.bigint() - start) / count);
  }
  console.log(`${label.padEnd(40)} ${min.toFixed(0).padStart(6)} ns`);
}

const source = Buffer.alloc(1 << 16, 3);
let kept;
for (const size of [64, 65, 256, 1024, 2048, 4096, 65536]) {
  const count = size > 4096 ? 20000 : 200000;
  best(`slice, ${size} B`, count, (i) => (kept = Uint8Array.prototype.slice.call(source, (i * 8) & 0x7fff, ((i * 8) & 0x7fff) + size)));
  best(`allocUnsafe + copy, ${size} B`, count, (i) => {
    const out = Buffer.allocUnsafe(size);
    source.copy(out, 0, (i * 8) & 0x7fff, ((i * 8) & 0x7fff) + size);
    kept = out;
  });
}

function PooledBuffer(length) {
  return length <= 64 ? Buffer.alloc(length) : Buffer.allocUnsafe(length);
}
class PooledSlices extends Uint8Array {
  static get [Symbol.species]() {
    return PooledBuffer;
  }
}
Object.setPrototypeOf(PooledSlices.prototype, Buffer.prototype);

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
for (const size of [64, 100, 1024, 3000]) {
  const encoded = packr.pack({ seq: 1, ts: 2, kind: 'tick', payload: Buffer.alloc(size, 1) });
  const memory = new ArrayBuffer(8192);
  const plain = Buffer.from(memory);
  encoded.copy(plain, 0);
  const pooled = new PooledSlices(memory, 0, 8192);
  const range = { start: 0, end: encoded.length };
  best(`decode, payload ${size} B, plain source`, 200000, () => unpackr.unpack(plain, range));
  best(`decode, payload ${size} B, pooled slices`, 200000, () => unpackr.unpack(pooled, range));
}
