// node bench/wake-steps.mjs [--round-trips 1000] [--rounds 2]: the wake-up round trip
// (this process sleeps 1 ms, sends, and awaits the echo of a peer process asleep in
// `await receive()`), stamped at each step on the clock both processes share
// (CLOCK_MONOTONIC), for a number and for the benchmark's small object, alternated.
// Medians in µs of: make the message, send it (a sleeping peer costs the send a wake-up
// system call), until the peer has it, the peer's echo (its send, with the wake-up of
// this process), until this process has the echo, and the whole round trip.
// Run it alone: it is a timing.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from 'shmchan';

const { values } = parseArgs({ options: { 'round-trips': { type: 'string', default: '1000' }, rounds: { type: 'string', default: '2' } } });
const count = Number(values['round-trips']);
const index = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const WARM = 50;

async function run(object) {
  const name = `bench-wake-steps-${process.pid}`;
  const stamps = path.join(os.tmpdir(), `${name}.json`);
  const down = Channel.create(`${name}-down`);
  const up = Channel.create(`${name}-up`);
  const peer = spawn(process.execPath, ['--input-type=module', '-e', `
import { writeFileSync } from 'node:fs';
const { Channel } = await import(${JSON.stringify(index)});
const down = Channel.open(${JSON.stringify(down.name)});
const up = Channel.open(${JSON.stringify(up.name)});
const got = [], sent = [];
for (;;) {
  const value = await down.receive();
  got.push(String(process.hrtime.bigint()));
  if (value === 'end') break;
  up.trySend(value);
  sent.push(String(process.hrtime.bigint()));
}
writeFileSync(${JSON.stringify(stamps)}, JSON.stringify({ got, sent }));
down.close();
up.close();`], { stdio: 'inherit' });
  const rows = [];
  try {
    up.tryReceive();
    for (let i = 0; i < WARM + count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const t0 = process.hrtime.bigint();
      const value = object ? { seq: i, ts: Date.now(), kind: 'tick', payload: Buffer.alloc(64, 7) } : i;
      const t1 = process.hrtime.bigint();
      down.trySend(value);
      const t2 = process.hrtime.bigint();
      await up.receive({ timeout: 10_000 });
      rows.push([t0, t1, t2, process.hrtime.bigint()]);
    }
    down.trySend('end');
    await new Promise((resolve) => peer.on('exit', resolve));
  } finally {
    peer.kill();
    down.close();
    up.close();
  }
  const { got, sent } = JSON.parse(readFileSync(stamps, 'utf8'));
  rmSync(stamps);
  const steps = { make: [], send: [], 'until the peer has it': [], 'peer echoes': [], 'until the echo is here': [], 'round trip': [] };
  const us = (a, b) => Number(b - a) / 1000;
  for (let i = WARM; i < WARM + count; i++) {
    const [t0, t1, t2, t3] = rows[i];
    const [g, s] = [BigInt(got[i]), BigInt(sent[i])];
    steps.make.push(us(t0, t1));
    steps.send.push(us(t1, t2));
    steps['until the peer has it'].push(us(t2, g));
    steps['peer echoes'].push(us(g, s));
    steps['until the echo is here'].push(us(s, t3));
    steps['round trip'].push(us(t0, t3));
  }
  const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  return Object.fromEntries(Object.entries(steps).map(([step, samples]) => [step, median(samples)]));
}

for (let round = 0; round < Number(values.rounds); round++)
  for (const object of [false, true]) {
    const medians = await run(object);
    console.log(`${object ? 'small object' : 'number      '}  ${Object.entries(medians).map(([step, m]) => `${step} ${m.toFixed(1)}`).join(' · ')}`);
  }
