// node bench/fresh-buffers.mjs [--count 20000]: what a byte stream pays per 64 KiB
// chunk before any transport: copying into a Buffer allocated for the chunk (what a
// Readable must hand out, since its reader may keep it; Node's pipe reads do the
// same) against copying into one reused Buffer, and into slices of a fresh 1 MiB
// slab. Fresh memory is faulted in page by page on first touch.
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { count: { type: 'string', default: '20000' } } });
const count = Number(values.count);
const source = Buffer.alloc(65536, 1);

function time(label, copyOne) {
  const start = performance.now();
  let kept = [];
  for (let i = 0; i < count; i++) {
    if (i % 64 === 0) kept = []; // a reader that keeps chunks a little while
    kept.push(copyOne());
  }
  const micros = ((performance.now() - start) * 1000) / count;
  console.log(`${label.padEnd(26)} ${micros.toFixed(2).padStart(7)} µs per 64 KiB  ${(65.536 / micros).toFixed(2).padStart(6)} GB/s`);
}

const reused = Buffer.allocUnsafe(65536);
let slab = Buffer.allocUnsafe(1 << 20);
let offset = 0;
for (let round = 0; round < 2; round++) {
  time('into one reused Buffer', () => (source.copy(reused), reused));
  time('into Buffer.allocUnsafe', () => {
    const chunk = Buffer.allocUnsafe(65536);
    source.copy(chunk);
    return chunk;
  });
  time('into a 1 MiB slab', () => {
    if (offset + 65536 > slab.length) [slab, offset] = [Buffer.allocUnsafe(1 << 20), 0];
    const chunk = slab.subarray(offset, (offset += 65536));
    source.copy(chunk);
    return chunk;
  });
}
