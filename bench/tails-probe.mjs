// node bench/tails-probe.mjs [--count N] [--spin µs]: where the slow round trips of
// a small-object ping-pong come from. Two processes, trySend + receiveSync, as in
// the benchmark's round-trip row; it reports p50/p99/p99.9, then how many round
// trips were slow (> 20 µs) next to how many wake-up calls both sides made (the
// wait lines' sequence words count them) and how many garbage collections ran in
// this process, and how long they took. Run it alone: it is a timing.
import { spawn } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from 'shmchan';

const { values } = parseArgs({ options: { count: { type: 'string', default: '200000' }, spin: { type: 'string', default: '50' }, peer: { type: 'string' } } });
const count = Number(values.count);
const spinMicros = Number(values.spin);
const message = (i) => ({ seq: i, ts: 1700000000000, kind: 'tick', payload: Buffer.alloc(64, 0x5a) });

if (values.peer !== undefined) {
  const down = Channel.open(`${values.peer}-down`, { spinMicros });
  const up = Channel.open(`${values.peer}-up`, { spinMicros });
  for (let i = 0; i <= count; i++) up.trySend(down.receiveSync());
  process.exit(0);
}

const prefix = `shmchan-tails-${process.pid}`;
const down = Channel.create(`${prefix}-down`, { spinMicros });
const up = Channel.create(`${prefix}-up`, { spinMicros });
const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--count', String(count), '--spin', String(spinMicros), '--peer', prefix], { stdio: 'inherit' });
const gcs = [];
new PerformanceObserver((list) => gcs.push(...list.getEntries().map((e) => e.duration * 1000))).observe({ entryTypes: ['gc'] });
const internals = (c) => c[Symbol.for('shmchan.internals')]();
const DATA_SEQ = 0; // filled below from the layout
const { OFF_DATA_SEQ, OFF_SPACE_SEQ } = await import('../dist/core/layout.js');
const wakes = () => [down, up].reduce((sum, c) => sum + internals(c).ring.i32[OFF_DATA_SEQ >> 2] + internals(c).ring.i32[OFF_SPACE_SEQ >> 2], DATA_SEQ);
down.trySend(message(0));
up.receiveSync();
const samples = new Float64Array(count);
const wakesBefore = wakes();
for (let i = 0; i < count; i++) {
  const t0 = process.hrtime.bigint();
  down.trySend(message(i + 1));
  up.receiveSync();
  samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
}
const wakeCalls = wakes() - wakesBefore;
await new Promise((resolve) => child.on('exit', resolve));
await new Promise((resolve) => setTimeout(resolve, 50));
const sorted = Float64Array.from(samples).sort();
const at = (p) => sorted[Math.floor(p * count)].toFixed(1);
const slow = samples.filter((s) => s > 20).length;
const gcMicros = gcs.reduce((a, b) => a + b, 0);
console.log(
  `spin ${spinMicros} µs: p50 ${at(0.5)} p99 ${at(0.99)} p99.9 ${at(0.999)} µs; slow (>20 µs) ${slow} of ${count} (${((100 * slow) / count).toFixed(2)}%); ` +
    `wake-up calls ${wakeCalls}; GCs here ${gcs.length}, ${(gcMicros / Math.max(1, gcs.length)).toFixed(0)} µs each`,
);
down.close();
up.close();
