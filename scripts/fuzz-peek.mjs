#!/usr/bin/env node
// Fuzzes the consumer's reading of a ring that another process can write: the
// relay consumer's peek (src/nats/relay.ts, what `shmchan bridge --to` uses) and
// tryReceive, both through the one scanner of each ring mode (src/core/spsc.ts,
// mpsc.ts, and for the fan-out modes 'broadcast' ('block' and 'overwrite') and
// 'mpmc' fanout.ts, broadcast.ts, mpmc.ts), and on the fan-out modes a
// producer's trySend, which moves the head under the release lock. Seeded random
// and mutational: each iteration forges a ring in a real segment (cursors,
// RELEASING, record headers, lengths, padding, claim markers, consumed records
// and records taken by MPMC consumers, the end flag; consumer slots' owner words,
// generations and positions (cursor | lost << 32), the release lock), mostly from
// well-formed records with a few mutations, opens a fresh consumer handle and
// calls peek / commit / rewind or tryReceive, and trySend, forging more between
// calls as a live peer could. On every other channel a
// second thread also scribbles on the ring while the calls run, as a process
// writing between two reads of the consumer would (those sessions replay only
// roughly from their seed).
//
//   node scripts/fuzz-peek.mjs [--seconds N] [--iterations N] [--seed S]
//
// Every call must return a message, EMPTY/ENDED (undefined for tryReceive) or
// throw a ShmChanError with a code a corrupt ring can cause (and ERR_LAGGED, a
// subscriber lapped under 'overwrite'); a peeked record must
// lie inside the ring, and no record header may be looked up outside it. A call
// that has not returned after CALL_DEADLINE_MS fails the run as a hang (the
// fuzzing runs in a worker thread that this thread watches and stops). Exits 1
// on the first failure, printing the seed and iteration to replay. Needs `tsc`
// output in dist/ (npm run build or npx tsc -p .).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => path.join(root, 'dist', file);
const { Channel, ShmChanError } = await import(dist('index.js'));

/** Generous: only to turn a call that never returns into a failure. */
const CALL_DEADLINE_MS = 10_000;
/** What a corrupt or hostile ring may make a consumer call throw. */
const EXPECTED_CODES = new Set(['ERR_CORRUPT', 'ERR_DECODE', 'ERR_ENDED', 'ERR_MESSAGE_TOO_LARGE', 'ERR_INCOMPATIBLE']);
/** Iterations on one channel before the next is made with other options. */
const SESSION_ITERATIONS = 500;

// progress words shared with the watching thread
const ITERATION = 0;
const CALLS = 1; // bumped when a call starts and when it ends: odd while one runs
const CALL = 2; // which call runs: an index into CALL_NAMES
const CALL_NAMES = ['Channel.open', 'relayConsumer', 'relay.next', 'relay.commit', 'relay.rewind', 'tryReceive', 'tryReceiveInto', 'trySend'];

// the channel the scribbler writes on: its session number + 1 (0: none, -1: stop) and backend
const SCRIBBLE_SESSION = 0;
const SCRIBBLE_SYSV = 1;

const channelName = (session) => `fuzz-peek-${process.pid}-${session}`;

if (isMainThread) await watch();
else if (workerData.scribble) await scribble(workerData);
else await fuzz(workerData);

function parseArgs(argv) {
  const options = { seconds: undefined, iterations: undefined, seed: Date.now() % 2 ** 31 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], Number(argv[i + 1])];
    if (!['--seconds', '--iterations', '--seed'].includes(flag) || !Number.isInteger(value) || value < 0) {
      console.error('usage: fuzz-peek.mjs [--seconds N] [--iterations N] [--seed S]');
      process.exit(2);
    }
    options[flag.slice(2)] = value;
    i++;
  }
  if (options.seconds === undefined && options.iterations === undefined) options.seconds = 30;
  return options;
}

async function watch() {
  const options = parseArgs(process.argv.slice(2));
  if (!existsSync(dist('nats/relay.js'))) {
    console.error('fuzz-peek: dist/ is missing; run npx tsc -p . first');
    process.exit(2);
  }
  const progress = new Int32Array(new SharedArrayBuffer(12));
  const channels = [];
  const scribbling = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { ...options, progress, scribbling } });
  const scribbler = new Worker(fileURLToPath(import.meta.url), { workerData: { scribble: true, seed: options.seed, scribbling } });
  scribbler.on('message', ({ sessions, writes }) => console.log(`fuzz-peek: the scribbler wrote ${writes} words into ${sessions} channels meanwhile`));
  scribbler.on('error', (error) => {
    console.error('fuzz-peek: FAILED, the scribbler threw:', error);
    failed = true;
  });
  console.log(`fuzz-peek: seed ${options.seed}, ${options.iterations ?? 'unlimited'} iterations, ${options.seconds ?? 'unlimited'} s`);
  let failed = false;
  const done = new Promise((resolve) => {
    worker.on('message', (message) => {
      if (message.channel) channels.push(message.channel);
      if (message.failure) {
        console.error(`fuzz-peek: FAILED at iteration ${message.iteration} (replay with --seed ${options.seed}):\n${message.failure}`);
        failed = true;
      }
      if (message.summary) console.log(`fuzz-peek: ${message.summary}`);
    });
    worker.on('error', (error) => {
      console.error(`fuzz-peek: FAILED, the worker threw (replay with --seed ${options.seed}):`, error);
      failed = true;
    });
    worker.on('exit', resolve);
  });
  let seen = -1;
  let since = Date.now();
  const timer = setInterval(() => {
    const calls = Atomics.load(progress, CALLS);
    if (calls !== seen || calls % 2 === 0) {
      seen = calls;
      since = Date.now();
      return;
    }
    if (Date.now() - since < CALL_DEADLINE_MS) return;
    console.error(
      `fuzz-peek: FAILED, ${CALL_NAMES[Atomics.load(progress, CALL)]} has not returned for ${CALL_DEADLINE_MS} ms at iteration ${Atomics.load(progress, ITERATION)} (replay with --seed ${options.seed})`,
    );
    failed = true;
    void worker.terminate();
  }, 250);
  await done;
  clearInterval(timer);
  Atomics.store(scribbling, SCRIBBLE_SESSION, -1);
  Atomics.notify(scribbling, SCRIBBLE_SESSION);
  await new Promise((resolve) => scribbler.once('exit', resolve));
  for (const { name, backend } of channels) {
    try {
      Channel.unlink(name, { backend });
    } catch (error) {
      if (error?.code !== 'ERR_CHANNEL_NOT_FOUND') console.error(`fuzz-peek: could not remove ${name}: ${error.message}`);
    }
  }
  process.exit(failed ? 1 : 0);
}

// ---- the worker: forging and calling ----

async function fuzz({ seconds, iterations, seed, progress, scribbling }) {
  const L = await import(dist('core/layout.js'));
  const { relayConsumer, EMPTY, ENDED } = await import(dist('nats/relay.js'));
  const { pack } = await import('msgpackr');
  const internalsOf = (channel) => channel[Symbol.for('shmchan.internals')]();

  let state = BigInt(seed) | 1n;
  /** xorshift64: the same seed, the same run (but for MPSC's 1 ms dead-claim clock). */
  const next = () => {
    state ^= (state << 13n) & 0xffffffffffffffffn;
    state ^= state >> 7n;
    state ^= (state << 17n) & 0xffffffffffffffffn;
    return Number(state & 0xffffffffn);
  };
  const below = (n) => next() % n;
  const chance = (p) => next() / 2 ** 32 < p;
  const oneOf = (items) => items[below(items.length)];

  const deadline = seconds === undefined ? Infinity : Date.now() + seconds * 1000;
  const codes = {};
  const results = { message: 0, empty: 0, ended: 0 };
  let calls = 0;
  const perCall = {}; // calls by name and mode
  let session;

  function newSession(index) {
    const capacity = oneOf([4096, 8192, 65536]);
    const limit = capacity / 2 - L.RECORD_HEADER;
    const options = {
      mode: oneOf(['spsc', 'mpsc', 'broadcast', 'broadcast', 'mpmc']),
      capacity,
      maxMessageSize: oneOf([1, 64, 1000, limit, 1 + below(limit)]),
      codec: oneOf(['raw', 'msgpack', 'msgpack', undefined]),
      backend: chance(0.25) ? 'sysv' : 'posix',
    };
    if (options.codec === undefined) {
      delete options.codec;
      options.records = true;
    }
    if (options.mode === 'broadcast') options.overflow = oneOf(['block', 'overwrite']);
    const name = channelName(index);
    parentPort.postMessage({ channel: { name, backend: options.backend } });
    const creator = Channel.create(name, options);
    if (index % 2 === 1) {
      Atomics.store(scribbling, SCRIBBLE_SYSV, options.backend === 'sysv' ? 1 : 0);
      Atomics.store(scribbling, SCRIBBLE_SESSION, index + 1);
      Atomics.notify(scribbling, SCRIBBLE_SESSION);
    }
    return { name, options, creator, ring: internalsOf(creator).ring };
  }

  function closeSession() {
    if (session === undefined) return;
    Atomics.store(scribbling, SCRIBBLE_SESSION, 0);
    session.creator.close();
    Channel.unlink(session.name, { backend: session.options.backend });
  }

  // ---- forging ----

  function interesting(capacity, idx) {
    switch (below(16)) {
      case 0: return 0;
      case 1: return 8;
      case 2: return capacity;
      case 3: return capacity - idx;
      case 4: return capacity - idx + 8;
      case 5: return -8;
      case 6: return -capacity;
      case 7: return 0x7fffffff;
      case 8: return -0x80000000;
      case 9: return -1;
      case 10: return L.RECORD_PADDING;
      case 11: return L.RECORD_DATA;
      case 12: return marker();
      case 13: return 0xfffffff9 | 0; // rounds up past 2^32
      default: return next() | 0;
    }
  }

  /** A record an MPMC consumer has taken: the consumer flag, a slot, a generation. */
  function consumerMarker() {
    return (L.CONSUMER_FLAG | (below(L.MAX_CONSUMERS) << L.CLAIM_SLOT_SHIFT) | below(4)) | 0;
  }

  const fanout = () => session.options.mode === 'broadcast' || session.options.mode === 'mpmc';

  /** A committed record's type word: data, or for the fan-out modes also consumed or taken. */
  function dataType() {
    if (!fanout() || chance(0.7)) return chance(0.9) ? L.RECORD_DATA : marker();
    return oneOf([L.RECORD_CONSUMED, consumerMarker(), marker()]);
  }

  /** The fan-out words: consumer slots' owner words and generations or positions
   * (cursor | lost << 32, the cursor near head and tail), and the release lock. */
  function forgeFanout(head, tail) {
    const { i32, capacity } = session.ring;
    const words = new DataView(i32.buffer);
    for (let n = below(4); n > 0; n--) {
      const slot = L.OFF_PRODUCERS + below(4) * L.PRODUCER_SIZE;
      words.setUint32(slot + L.CONSUMER_OWNER, chance(0.6) ? 1 + below(1 << 22) : 0, true);
      const cursor = oneOf([head, tail, head + 8 * below(capacity / 8), tail + 8, head - 8, next()]) >>> 0;
      words.setUint32(slot + L.CONSUMER_POSITION, chance(0.9) ? cursor : cursor | 1, true);
      words.setUint32(slot + L.CONSUMER_POSITION + 4, chance(0.7) ? 0 : next(), true);
    }
    i32[L.OFF_RELEASE_LOCK >> 2] = chance(0.8) ? 0 : oneOf([consumerMarker(), marker(), next() | 0]);
  }

  /** A claim marker: the flag, a slot, a generation (usually no live producer's). */
  function marker() {
    return (L.CLAIM_FLAG | (below(L.MAX_PRODUCERS) << L.CLAIM_SLOT_SHIFT) | (chance(0.5) ? below(4) : below(L.CLAIM_GENERATION_MASK + 1))) | 0;
  }

  function payload(bytes, at, length) {
    if (session.options.codec !== 'raw' && chance(0.7)) {
      const value = oneOf([null, 1, 'text', { a: 1, b: [1, 2, 3] }, 'x'.repeat(below(300)), [true, { k: 'v' }]]);
      const encoded = pack(value);
      encoded.copy(bytes, at, 0, Math.min(encoded.length, length));
    } else {
      for (let i = 0; i < length; i++) bytes[at + i] = next() & 0xff;
    }
  }

  /** Writes a ring as producers (and a hostile peer) could have left it. */
  function forge() {
    const { i32, bytes, capacity, mask } = session.ring;
    const word = (idx) => session.ring.lengthIndex(idx);
    bytes.fill(0);
    const head = chance(0.9) ? (oneOf([0, capacity - 8, 0xfffffff8, capacity * below(1000)]) + 8 * below(capacity / 8)) >>> 0 : next() >>> 0;
    let position = head;
    const maxMessage = session.ring.maxMessageSize;
    for (let records = below(7); records > 0; records--) {
      const idx = position & mask & ~7;
      const kind = below(10);
      if (kind < 6) {
        // a data record, after padding when it does not fit before the end
        const length = oneOf([0, 1, 7, 8, maxMessage, maxMessage + 1, below(Math.min(maxMessage, capacity / 2) + 1)]);
        const size = (L.RECORD_HEADER + length + 7) & ~7;
        let at = idx;
        if (capacity - idx < size) {
          if (size > capacity) break;
          i32[word(idx) + 1] = L.RECORD_PADDING;
          i32[word(idx)] = capacity - idx;
          position = (position + capacity - idx) >>> 0;
          at = 0;
        }
        if (at + size > capacity) break;
        payload(bytes, at + L.RECORD_HEADER, Math.min(length, capacity - at - L.RECORD_HEADER));
        i32[word(at) + 1] = dataType(); // MPSC: committed while the type still names the claimant
        i32[word(at)] = L.RECORD_HEADER + length;
        position = (position + size) >>> 0;
      } else if (kind === 6) {
        // padding to the end of the ring, or a forged one
        i32[word(idx) + 1] = L.RECORD_PADDING;
        i32[word(idx)] = chance(0.7) ? capacity - idx : interesting(capacity, idx);
        position = (position + capacity - idx) >>> 0;
      } else if (kind === 7) {
        // an unfinished MPSC claim (or a wrapped one, or a padding claim)
        const need = chance(0.8) ? 8 * (1 + below(Math.min(64, capacity / 8))) : -interesting(capacity, idx);
        i32[word(idx) + 1] = chance(0.8) ? marker() : L.RECORD_PADDING;
        i32[word(idx)] = -need | 0;
        position = (position + (need >>> 0)) >>> 0;
      } else {
        // anything at all in a header
        i32[word(idx)] = interesting(capacity, idx);
        i32[word(idx) + 1] = interesting(capacity, idx);
        position = (position + 8 * (1 + below(8))) >>> 0;
      }
    }
    const tail = chance(0.85) ? position : chance(0.5) ? head : (head + interesting(capacity, 0)) >>> 0;
    i32[L.OFF_HEAD >> 2] = head | 0;
    i32[L.OFF_TAIL >> 2] = tail | 0;
    i32[L.OFF_RELEASING >> 2] = chance(0.9) ? head | 0 : (head + oneOf([8, 1, 4]) * below(capacity / 8)) | 0;
    if (fanout()) forgeFanout(head, tail);
    i32[L.OFF_ENDED >> 2] = chance(0.1) ? 1 : 0;
    new BigUint64Array(i32.buffer, L.OFF_HEAD_POSITION, 1)[0] = chance(0.9) ? BigInt(head) : BigInt(next()) << 20n;
    if (session.options.records && chance(0.2)) scribbleStructures();
    mutate(below(4));
  }

  /** A few hostile writes: a record header, a cursor, a byte anywhere in the ring. */
  function mutate(count) {
    const { i32, bytes, capacity } = session.ring;
    for (let i = 0; i < count; i++) {
      const idx = 8 * below(capacity / 8);
      switch (below(5)) {
        case 0:
          i32[session.ring.lengthIndex(idx)] = interesting(capacity, idx);
          break;
        case 1:
          i32[session.ring.lengthIndex(idx) + 1] = interesting(capacity, idx);
          break;
        case 2:
          i32[oneOf([L.OFF_HEAD, L.OFF_TAIL, L.OFF_RELEASING, L.OFF_ENDED, L.OFF_RELEASE_LOCK, L.OFF_PRODUCERS + L.CONSUMER_POSITION, L.OFF_PRODUCERS + L.CONSUMER_POSITION + 4]) >> 2] =
            interesting(capacity, 0);
          break;
        case 3:
          bytes[below(capacity)] ^= 1 << below(8);
          break;
        default:
          i32[L.OFF_TAIL >> 2] = (i32[L.OFF_TAIL >> 2] + 8 * (below(16) - 8)) | 0;
      }
    }
  }

  function scribbleStructures() {
    const { i32 } = session.ring;
    const header = Buffer.from(i32.buffer, 0, L.HEADER_SIZE);
    if (chance(0.5)) i32[L.OFF_STRUCTURES_LENGTH >> 2] = interesting(L.STRUCTURES_SIZE, 0);
    for (let i = below(8); i > 0; i--) header[L.OFF_STRUCTURES + below(L.STRUCTURES_SIZE)] = next() & 0xff;
  }

  // ---- calling ----

  /** The first failure ends the run. It is reported at once: thrown from inside
   * the library, it may come out wrapped in a ShmChanError. */
  let failed = false;
  class FuzzFailure extends Error {}
  function fail(iteration, text) {
    if (!failed) parentPort.postMessage({ failure: text, iteration });
    failed = true;
    throw new FuzzFailure(text);
  }

  /** Runs one consumer call under the watch; a ShmChanError is a valid answer. */
  function call(iteration, what, fn) {
    calls++;
    const key = `${what}@${session.options.mode}${session.options.overflow ? `/${session.options.overflow}` : ''}`;
    perCall[key] = (perCall[key] ?? 0) + 1;
    Atomics.store(progress, CALL, CALL_NAMES.indexOf(what));
    Atomics.add(progress, CALLS, 1);
    try {
      return { value: fn() };
    } catch (error) {
      if (failed) throw error;
      if (!(error instanceof ShmChanError)) fail(iteration, `${what} threw something else than a ShmChanError: ${error?.stack ?? error}`);
      const lapped = error.code === 'ERR_LAGGED' && session.options.overflow === 'overwrite';
      if (!EXPECTED_CODES.has(error.code) && !lapped) fail(iteration, `${what} threw ${error.code}, which a corrupt ring should not cause: ${error.message}`);
      codes[error.code] = (codes[error.code] ?? 0) + 1;
      return { error };
    } finally {
      Atomics.add(progress, CALLS, 1);
    }
  }

  /** Record headers looked up outside the ring would be read from outside it (the
   * capacity itself is looked up as the end of a range to zero). */
  function watchLookups(iteration, ring) {
    const lengthIndex = ring.lengthIndex;
    ring.lengthIndex = (idx) => {
      if (!Number.isInteger(idx) || idx < 0 || idx > ring.capacity || idx % 8 !== 0)
        fail(iteration, `a record header looked up at ring index ${idx} of ${ring.capacity}: ${new Error().stack}`);
      return lengthIndex.call(ring, idx);
    };
  }

  function checkPeeked(iteration, relay, ring, got) {
    if (relay.peeked === undefined) {
      // a fan-out relay: a copy of what it took
      if (!(got.bytes.length <= ring.maxMessageSize) || typeof got.position !== 'bigint')
        fail(iteration, `next() answered ${got.bytes.length} bytes at ${got.position} (maxMessageSize ${ring.maxMessageSize})`);
      return;
    }
    const record = relay.peeked[relay.peeked.length - 1];
    const { start, end } = record;
    if (!(start >= L.RECORD_HEADER && start <= end && end <= ring.capacity && end - start <= ring.maxMessageSize))
      fail(iteration, `peek answered ring bytes [${start}, ${end}) of a ${ring.capacity}-byte ring (maxMessageSize ${ring.maxMessageSize})`);
    if (got.bytes.length !== end - start || typeof got.position !== 'bigint') fail(iteration, `next() answered ${got.bytes.length} bytes for [${start}, ${end})`);
  }

  function tally(value) {
    if (value === EMPTY || value === undefined) results.empty++;
    else if (value === ENDED) results.ended++;
    else results.message++;
  }

  function checkingCodec(iteration, maxMessageSize) {
    return {
      encode: (value) => value,
      decode: (bytes) => {
        if (bytes.length > maxMessageSize) fail(iteration, `a message of ${bytes.length} bytes reached decode (maxMessageSize ${maxMessageSize})`);
        return bytes;
      },
    };
  }

  /** On the fan-out modes, a producer that may find no room and release (the
   * creator's handle); else, or as often, a few more hostile writes. */
  function sendOrMutate(iteration) {
    if (!fanout() || session.options.records || chance(0.5)) return mutate(1 + below(2));
    // up to a quarter of the ring, a few times: producers that lap a subscriber under 'overwrite'
    const length = oneOf([0, 8, below(session.ring.capacity / 4)]);
    const value = session.options.codec === 'raw' ? Buffer.alloc(length, 7) : 'x'.repeat(length);
    for (let n = 1 + below(8); n > 0; n--) call(iteration, 'trySend', () => session.creator.trySend(value));
  }

  function exercise(iteration) {
    const { name, options } = session;
    const openOptions = { backend: options.backend };
    if (!options.records && chance(0.3)) openOptions.codec = checkingCodec(iteration, session.ring.maxMessageSize);
    if (options.mode === 'broadcast' && chance(0.5)) openOptions.from = 'oldest';
    const opened = call(iteration, 'Channel.open', () => Channel.open(name, openOptions));
    if (opened.error) return;
    const consumer = opened.value;
    try {
      const ring = internalsOf(consumer).ring;
      watchLookups(iteration, ring);
      if (!options.records && chance(0.7)) {
        const made = call(iteration, 'relayConsumer', () => relayConsumer(consumer));
        if (made.error) return;
        const relay = made.value;
        for (let step = 0; step < 8; step++) {
          const pick = below(10);
          if (pick < 6) {
            const got = call(iteration, 'relay.next', () => relay.next());
            if (got.error) continue;
            tally(got.value);
            if (got.value !== EMPTY && got.value !== ENDED) checkPeeked(iteration, relay, ring, got.value);
          } else if (pick < 8) {
            if (relay.pending > 0) call(iteration, 'relay.commit', () => relay.commit());
          } else if (pick < 9) {
            call(iteration, 'relay.rewind', () => relay.rewind());
          } else {
            sendOrMutate(iteration);
          }
        }
      } else {
        const target = Buffer.alloc(oneOf([0, 16, 4096]));
        for (let step = 0; step < 8; step++) {
          const pick = below(10);
          if (pick < 6) {
            const got = call(iteration, 'tryReceive', () => consumer.tryReceive());
            if (!got.error) tally(got.value);
          } else if (pick < 8 && options.codec === 'raw' && openOptions.codec === undefined) {
            const got = call(iteration, 'tryReceiveInto', () => consumer.tryReceiveInto(target));
            if (!got.error && got.value !== undefined && !(got.value >= 0 && got.value <= target.length))
              fail(iteration, `tryReceiveInto answered ${got.value} for a ${target.length}-byte target`);
            if (!got.error) tally(got.value);
          } else {
            sendOrMutate(iteration);
          }
        }
      }
    } finally {
      consumer.close();
    }
  }

  const started = Date.now();
  let iteration = 0;
  try {
    for (; (iterations === undefined || iteration < iterations) && Date.now() < deadline; iteration++) {
      Atomics.store(progress, ITERATION, iteration);
      if (iteration % SESSION_ITERATIONS === 0) {
        closeSession();
        session = newSession(iteration / SESSION_ITERATIONS);
      }
      forge();
      exercise(iteration);
    }
  } catch (error) {
    if (!failed) throw error;
    return;
  } finally {
    closeSession();
  }
  const took = ((Date.now() - started) / 1000).toFixed(1);
  parentPort.postMessage({
    summary: `${iteration} iterations, ${calls} calls in ${took} s, no failure; answers ${JSON.stringify(results)}, errors ${JSON.stringify(codes)}; calls ${JSON.stringify(perCall)}`,
  });
}

// ---- the scribbler: a hostile peer writing while the consumer reads ----

/** Writes interesting words into the ring and the cursors of the current channel,
 * as fast as it can, until told to stop. */
async function scribble({ seed, scribbling }) {
  const L = await import(dist('core/layout.js'));
  let state = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  let current = 0;
  let channel;
  let sessions = 0;
  let writes = 0;
  for (;;) {
    const wanted = Atomics.load(scribbling, SCRIBBLE_SESSION);
    if (wanted === -1) break;
    if (wanted !== current) {
      channel?.close();
      channel = undefined;
      current = wanted;
      if (wanted > 0) {
        try {
          channel = Channel.open(channelName(wanted - 1), { backend: Atomics.load(scribbling, SCRIBBLE_SYSV) === 1 ? 'sysv' : 'posix' });
          sessions++;
        } catch {
          // closed again before we came: wait for the next one
        }
      }
    }
    if (channel === undefined) {
      Atomics.wait(scribbling, SCRIBBLE_SESSION, current, 100);
      continue;
    }
    const { i32, capacity } = channel[Symbol.for('shmchan.internals')]().ring;
    const cursors = [L.OFF_HEAD, L.OFF_TAIL, L.OFF_RELEASING, L.OFF_ENDED, L.OFF_RELEASE_LOCK, L.OFF_PRODUCERS + L.CONSUMER_POSITION].map((off) => off >> 2);
    for (let i = 0; i < 10_000; i++) {
      const r = next();
      const index = r % 8 === 0 ? cursors[(r >>> 3) % cursors.length] : (L.HEADER_SIZE >> 2) + ((r >>> 3) % (capacity >> 2));
      const value = [0, 8, capacity, -8, L.RECORD_PADDING, L.RECORD_DATA, L.CLAIM_FLAG | 0, next() | 0][(r >>> 24) % 8];
      const before = i32[index];
      i32[index] = value;
      if (r & 0x800000) i32[index] = before; // a flip: the truth again, after a moment
    }
    writes += 10_000;
  }
  channel?.close();
  parentPort.postMessage({ sessions, writes });
}
