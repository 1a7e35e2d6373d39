// What a trial measures. Each scenario has a main part (in the trial's process,
// which measures) and a peer part (in each peer); `peers` says how many peers.
// `messages` are the message kinds it runs with, `quickMessages` those of --quick
// (default: the same). Times come from process.hrtime.bigint(); every scenario warms up first and
// discards what it measured meanwhile.
import { setTimeout as sleep } from 'node:timers/promises';
import { Packr, Unpackr } from 'msgpackr';
import { messageBytes, messageKinds, type Durations, type Endpoint, type MainSide, type PeerSide, type TrialSpec } from './drivers';

const now = () => Number(process.hrtime.bigint()); // ns; exact in a double for centuries of uptime

/** Round-trip times, µs. */
export interface Latency {
  samples: number;
  p50: number;
  p99: number;
  p999: number;
  mean: number;
}

export interface Throughput {
  messages: number;
  seconds: number;
  msgsPerSec: number;
  bytesPerSec: number;
  messageBytes: number;
}

export interface ParkedCpu {
  seconds: number;
  cpuMicros: number;
  cpuPercent: number;
}

export interface MsgpackrTimes {
  messageBytes: number;
  encodePerSec: number;
  decodePerSec: number;
  encodeDecodePerSec: number;
  encodeNs: number;
  decodeNs: number;
}

/** What a trial's main part measures: one of the above, by scenario. */
export type Measured = Latency | Throughput | ParkedCpu | MsgpackrTimes;

function percentiles(samples: ArrayLike<number>): Latency {
  if (samples.length === 0) throw new Error('no samples: the measured time is too short for one round trip');
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000;
  let sum = 0;
  for (const s of sorted) sum += s;
  return { samples: sorted.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), mean: sum / sorted.length / 1000 };
}

/** Runs handler-driven work on a side's receivers until `finish` is called; a peer's failure rejects. */
function untilFinished(side: MainSide, start: (finish: () => void) => unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (side.peers.failed !== null) reject(side.peers.failed);
    }, 50);
    const finish = () => {
      clearInterval(poll);
      resolve();
    };
    try {
      Promise.resolve(start(finish)).catch(reject);
    } catch (error) {
      reject(error);
    }
  });
}

// ---- round trips ----

/** One round trip, with the fastest call the receiver has. */
function roundTrip(rx: Endpoint, tx: Endpoint, value: unknown): unknown {
  tx.write(value);
  return rx.nextSync !== undefined ? rx.nextSync() : rx.next();
}

/** Main: round trips one after the other for the warm-up plus the measured time,
 * from the first answer on (so a peer's start-up is not in it). */
async function pingPong(side: MainSide, spec: TrialSpec): Promise<Latency> {
  const [rx] = side.receivers;
  const [tx] = side.senders;
  const make = messageKinds[spec.message].make;
  const { warmMs, measureMs } = spec.durations;
  await roundTrip(rx, tx, make(0));
  const max = 2_000_000;
  const samples = new Float64Array(max);
  const start = now();
  const warmEnd = start + warmMs * 1e6;
  const end = warmEnd + measureMs * 1e6;
  let n = 0;
  let i = 1;
  if (rx.nextSync !== undefined) {
    // at least one measured round trip, however long a loaded machine makes it
    for (let t = start; (t < end || n === 0) && n < max; i++) {
      const t0 = now();
      tx.write(make(i));
      rx.nextSync();
      t = now();
      if (t0 >= warmEnd) samples[n++] = t - t0;
    }
  } else {
    await untilFinished(side, (finish) => {
      let t0 = 0;
      const send = () => {
        t0 = now();
        tx.write(make(i++));
      };
      const started = rx.listen(() => {
        const t = now();
        if (t0 >= warmEnd) samples[n++] = t - t0;
        if ((t >= end && n > 0) || n === max) {
          finish();
          return true;
        }
        send();
        return false;
      });
      send();
      return started;
    });
  }
  return percentiles(samples.subarray(0, n));
}

/** Main: one round trip at a time with a pause of at least 1 ms before each, so the receiver has gone to sleep. */
async function wakeUp(side: MainSide, spec: TrialSpec): Promise<Latency> {
  const [rx] = side.receivers;
  const [tx] = side.senders;
  const make = messageKinds[spec.message].make;
  const { warmCount, count } = spec.durations.wakeup;
  const samples = new Float64Array(count);
  for (let i = 0; i < warmCount + count; i++) {
    await sleep(1);
    side.peers.check();
    const t0 = now();
    await roundTrip(rx, tx, make(i));
    if (i >= warmCount) samples[i - warmCount] = now() - t0;
  }
  return percentiles(samples);
}

/** Peer: sends back every message it gets. */
async function echo(side: PeerSide): Promise<void> {
  const { receiver: rx, sender: tx } = side;
  if (rx.nextSync !== undefined) for (;;) tx.write(rx.nextSync());
  await rx.listen((value) => void tx.write(value));
  await new Promise(() => {}); // until stopped
}

// ---- throughput ----

/** Main: counts what arrives on every receiver over the measured time, after a
 * warm-up that starts with the first message. */
async function consume(side: MainSide, spec: TrialSpec): Promise<Throughput> {
  const { warmMs, measureMs } = spec.durations;
  const bytes = messageBytes(spec.message);
  const mask = bytes >= 16384 ? 7 : 255; // look at the clock every mask + 1 messages
  let warmEnd = 0;
  let count = 0;
  let t1 = 0;
  let c1 = 0;
  let result: Throughput | undefined;
  await untilFinished(side, (finish) => {
    const handler = () => {
      if (result !== undefined) return true;
      if (++count === 1) warmEnd = now() + warmMs * 1e6;
      if ((count & mask) !== 0) return false;
      const t = now();
      if (t1 === 0) {
        if (t >= warmEnd) {
          t1 = t;
          c1 = count;
        }
      } else if (t - t1 >= measureMs * 1e6) {
        const seconds = (t - t1) / 1e9;
        const messages = count - c1;
        result = { messages, seconds, msgsPerSec: messages / seconds, bytesPerSec: (messages * bytes) / seconds, messageBytes: bytes };
        finish();
        return true;
      }
      return false;
    };
    return Promise.all(side.receivers.map((rx) => rx.listen(handler)));
  });
  return result!;
}

/** Peer: sends as fast as the mechanism takes messages until it is stopped. */
async function produce(side: PeerSide, spec: TrialSpec): Promise<void> {
  const tx = side.sender;
  const make = messageKinds[spec.message].make;
  for (let i = 0; ; i++) {
    const wait = tx.write(make(i));
    if (wait !== undefined) await wait;
  }
}

// ---- a parked receiver ----

/** Main: lets the peer settle after it starts, then leaves it waiting on an empty
 * channel for the parked time, then asks it what that wait cost. */
async function parkedMain(side: MainSide, spec: TrialSpec): Promise<ParkedCpu> {
  const [rx] = side.receivers;
  const [tx] = side.senders;
  const poke = async (ms: number) => {
    await sleep(ms);
    side.peers.check();
    tx.write(messageKinds.small.make(0));
  };
  await rx.next(); // ready
  await poke(Math.min(200, spec.durations.parkedMs));
  await poke(spec.durations.parkedMs);
  const report = (await rx.next()) as { cpuMicros: number; wallNs: number };
  return { seconds: report.wallNs / 1e9, cpuMicros: report.cpuMicros, cpuPercent: (report.cpuMicros * 1e5) / report.wallNs };
}

/** Peer: the CPU time (every thread's) of one asynchronous wait, `await receive()` for shmchan.
 * The wait before it absorbs what start-up left running (compilation, collection). */
async function parkedPeer(side: PeerSide): Promise<void> {
  side.sender.write(messageKinds.small.make(0));
  await side.receiver.next();
  const cpu = process.cpuUsage();
  const t0 = now();
  const message = (await side.receiver.next()) as object;
  const wallNs = now() - t0;
  const used = process.cpuUsage(cpu);
  side.sender.write({ ...message, kind: 'cpu', cpuMicros: used.user + used.system, wallNs });
  await new Promise(() => {}); // until stopped
}

// ---- msgpackr alone ----

/** The codec's share: msgpackr with shmchan's settings, encoding and decoding the small object. */
async function msgpackrAlone(spec: TrialSpec): Promise<MsgpackrTimes> {
  const packr = new Packr({ useRecords: false });
  const unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
  const make = messageKinds.small.make;
  const encoded = packr.pack(make(0));
  const loop = (ms: number, body: (i: number) => unknown) => {
    const end = now() + ms * 1e6;
    let n = 0;
    const t0 = now();
    let t = t0;
    while (t < end) {
      for (let j = 0; j < 1024; j++) body(n++);
      t = now();
    }
    return n / ((t - t0) / 1e9);
  };
  const { warmMs, measureMs } = spec.durations;
  const encode = (i: number) => packr.pack(make(i));
  const decode = () => unpackr.unpack(encoded);
  const both = (i: number) => unpackr.unpack(packr.pack(make(i)));
  for (const body of [encode, decode, both]) loop(warmMs / 3, body);
  const encodePerSec = loop(measureMs, encode);
  const decodePerSec = loop(measureMs, decode);
  const bothPerSec = loop(measureMs, both);
  return {
    messageBytes: encoded.length,
    encodePerSec,
    decodePerSec,
    encodeDecodePerSec: bothPerSec,
    encodeNs: 1e9 / encodePerSec,
    decodeNs: 1e9 / decodePerSec,
  };
}

// ---- the table ----

/** A scenario has a main and a peer part, or (with no peers) runs alone. */
type Scenario = {
  label: string;
  messages: string[];
  quickMessages?: string[];
  peers: number;
  multiProducer?: boolean;
  /** its rows are the median of repeated trials */
  throughput?: boolean;
  /** how long a trial takes, which its deadline allows for */
  budgetMs(d: Durations): number;
} & (
  | { main(side: MainSide, spec: TrialSpec): Promise<Measured>; peer(side: PeerSide, spec: TrialSpec): Promise<void>; alone?: undefined }
  | { alone(spec: TrialSpec): Promise<Measured>; main?: undefined; peer?: undefined }
);

const all = ['small', 'raw64', 'raw64k'];

export const scenarios: Record<string, Scenario> = {
  pingpong: {
    label: 'round trip (ping-pong)',
    messages: all,
    quickMessages: ['small'],
    peers: 1,
    main: pingPong,
    peer: echo,
    budgetMs: (d) => d.warmMs + d.measureMs,
  },
  oneway: {
    label: 'one-way throughput',
    // and 1 KiB: a received Buffer of that size comes from Node's pool, not from memory of its own
    messages: ['small', 'raw64', 'raw1k', 'raw64k'],
    peers: 1,
    throughput: true,
    main: consume,
    peer: produce,
    budgetMs: (d) => d.warmMs + d.measureMs,
  },
  fanin: {
    label: '4 producers -> 1 consumer',
    messages: all,
    quickMessages: ['small'],
    peers: 4,
    multiProducer: true,
    throughput: true,
    main: consume,
    peer: produce,
    budgetMs: (d) => d.warmMs + d.measureMs,
  },
  wakeup: {
    label: 'wake-up (asleep receiver)',
    messages: ['small'],
    peers: 1,
    main: wakeUp,
    peer: echo,
    budgetMs: (d) => 1.2 * (d.wakeup.warmCount + d.wakeup.count),
  },
  parked: {
    label: 'parked receiver CPU',
    messages: ['small'],
    peers: 1,
    main: parkedMain,
    peer: parkedPeer,
    budgetMs: (d) => d.parkedMs + 200,
  },
  msgpackr: {
    label: 'msgpackr alone',
    messages: ['small'],
    peers: 0,
    alone: msgpackrAlone,
    budgetMs: (d) => d.warmMs + 3 * d.measureMs,
  },
};
