// node bench/micro.mjs [--rounds N] [--mode mpsc]: CPU time per call of shmchan's data path in
// one process, no peer and no waiting: fill a channel with trySend, then empty it
// with tryReceive (or tryReceiveInto), and so on. It says what each side costs on
// its own, which the one-way benchmark cannot tell apart (both sides run at once
// there, on two cores). Best of the rounds, in ns per message; msgpackr alone is
// there as the floor of the msgpack rows. The idiomatic calls (await send(),
// await receive(), for await) are timed beside the try calls, and raw messages
// are also received as views (tryReceiveView). Run it alone: it is a timing.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Packr, Unpackr } from 'msgpackr';
import { Channel } from 'shmchan';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, kind: { type: 'string' }, mode: { type: 'string', default: 'spsc' } } });
const rounds = Number(values.rounds);

// The benchmark's messages and msgpackr settings (src/bench/drivers.ts), kept here
// as a copy: the package exports no benchmark module to import them from. Each
// message is one fixed value, so that no Date.now() is timed with it.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });
const kinds = {
  small: { label: 'small object', codec: 'msgpack', message: { seq: 0, ts: Date.now(), kind: 'tick', payload: Buffer.alloc(64, 0x5a) } },
  raw64: { label: 'raw 64 B', codec: 'raw', message: Buffer.alloc(64, 7) },
  raw64k: { label: 'raw 64 KiB', codec: 'raw', message: Buffer.alloc(65536, 7) },
};

// Each kind in a fresh process, so that one kind's code does not slow another's
// (V8's inline caches turn polymorphic when one process uses several codecs).
if (values.kind === undefined) {
  const ns = (v) => (v === null ? '-' : `${v.toFixed(0)} ns`);
  console.log(`CPU time per message, ${values.mode}, one process per row, best of ${rounds} (node bench/micro.mjs)`);
  const columns = ['trySend', 'await send', 'tryReceive', 'await receive', 'for await', 'tryReceiveInto', 'tryReceiveView'];
  console.log(['message', ...columns].map((h) => h.padEnd(15)).join(''));
  for (const kind of [...Object.keys(kinds), 'msgpackr']) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--kind', kind, '--rounds', String(rounds), '--mode', values.mode], { encoding: 'utf8' });
    const row = JSON.parse(out);
    if (kind === 'msgpackr') console.log(`msgpackr alone, small object: encode ${ns(row.encode)}, decode ${ns(row.decode)}`);
    else console.log([row.label, ...columns.map((c) => ns(row[c]))].map((c) => c.padEnd(15)).join(''));
  }
  process.exit(0);
}

const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/** ns per call of body(n), which makes n calls: CPU time, or the wall clock when
 * that is less (process.cpuUsage ticks coarsely). */
function timed(n, body) {
  const t0 = cpuNs();
  const h0 = process.hrtime.bigint();
  body(n);
  const wall = Number(process.hrtime.bigint() - h0);
  return Math.min(wall, Math.max(cpuNs() - t0, 1)) / n;
}

/** timed(), for a body that awaits. */
async function timedAsync(n, body) {
  const t0 = cpuNs();
  const h0 = process.hrtime.bigint();
  await body(n);
  const wall = Number(process.hrtime.bigint() - h0);
  return Math.min(wall, Math.max(cpuNs() - t0, 1)) / n;
}

/** The best of the rounds. */
function best(n, body) {
  let min = Infinity;
  for (let r = 0; r < rounds; r++) min = Math.min(min, timed(n, body));
  return min;
}

if (values.kind === 'msgpackr') {
  const small = kinds.small.message;
  const packed = packr.pack(small);
  const encode = best(200_000, (n) => {
    for (let i = 0; i < n; i++) packr.pack(small);
  });
  const decode = best(200_000, (n) => {
    for (let i = 0; i < n; i++) unpackr.unpack(packed);
  });
  console.log(JSON.stringify({ encode, decode }));
} else {
  const { label, codec, message } = kinds[values.kind];
  const name = `shmchan-micro-${process.pid}`;
  const capacity = 1 << 22;
  const tx = Channel.create(name, { capacity, codec, mode: values.mode, spinMicros: 0 });
  const rx = Channel.open(name, { codec });
  try {
    const into = new Uint8Array(rx.maxMessageSize);
    // how many fit, so every call below succeeds
    let fit = 0;
    while (tx.trySend(message)) fit++;
    while (rx.tryReceive() !== undefined);
    const n = Math.max(1, Math.floor(fit * 0.9));
    const fill = (count) => {
      for (let i = 0; i < count; i++) if (!tx.trySend(message)) throw new Error('full');
    };
    const drain = (count) => {
      for (let i = 0; i < count; i++) if (rx.tryReceive() === undefined) throw new Error('empty');
    };
    const drainInto = (count) => {
      for (let i = 0; i < count; i++) if (rx.tryReceiveInto(into) === undefined) throw new Error('empty');
    };
    const sendAwaiting = async (count) => {
      for (let i = 0; i < count; i++) await tx.send(message);
    };
    const receiveAwaiting = async (count) => {
      for (let i = 0; i < count; i++) await rx.receive();
    };
    const iterator = rx[Symbol.asyncIterator]();
    const iterate = async (count) => {
      for (let i = 0; i < count; i++) await iterator.next();
    };
    const drainViews = (count) => {
      for (let i = 0; i < count; i++) if (rx.tryReceiveView() === undefined) throw new Error('empty');
    };
    const raw = codec === 'raw';
    const row = { label, trySend: Infinity, 'await send': Infinity, tryReceive: Infinity, 'await receive': Infinity, 'for await': Infinity, tryReceiveInto: raw ? Infinity : null, tryReceiveView: raw ? Infinity : null };
    const min = (key, value) => (row[key] = Math.min(row[key], value));
    for (let r = 0; r < rounds; r++) {
      min('trySend', timed(n, fill));
      min('tryReceive', timed(n, drain));
      min('await send', await timedAsync(n, sendAwaiting));
      min('await receive', await timedAsync(n, receiveAwaiting));
      fill(n);
      min('for await', await timedAsync(n, iterate));
      if (raw) {
        fill(n);
        min('tryReceiveInto', timed(n, drainInto));
        fill(n);
        min('tryReceiveView', timed(n, drainViews));
        rx.tryReceive(); // releases the last view
      }
    }
    console.log(JSON.stringify(row));
  } finally {
    rx.close();
    tx.close();
  }
}

