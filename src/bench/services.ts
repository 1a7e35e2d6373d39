// Request/reply benchmarks: a shmchan Service and Client against request/reply
// over a unix socket (length-prefixed msgpack frames, matched by id) and against
// node:http over a unix socket, in the same run; beside them, the least request/reply
// over shmchan can be: the service's two kinds of channel written to by hand, with no
// envelope but the id, no liveness, no timeouts (what the Service layer costs). Each measurement runs in a fresh
// server process and a fresh client process: the round trip with one request in
// flight (p50, p99), then the throughput with 64 in flight. Measured in one client
// one after the other, what the first left in the heap slowed the second
// (bench/README.md, "One client per measurement").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Channel } from '../index';
import { MICROS_PER_TICK, medianOf, processTicks, startTrialProcess, stopTrialProcesses, type TrialProcess } from './trial-process';

const trialScript = path.join(__dirname, 'service-trial.js');

export const serviceMechanisms = [
  { id: 'shmchan', label: 'shmchan Service/Client' },
  { id: 'channels', label: 'shmchan channels by hand (no Service)' },
  { id: 'unix', label: 'unix socket, msgpack frames' },
  { id: 'http', label: 'node:http over a unix socket' },
] as const;

export interface ServiceTrialSpec {
  warmMs: number;
  measureMs: number;
  inFlight: number;
  /** Rounds: each measures every mechanism's round trip and throughput once, in fresh
   * processes; a row is the median of its mechanism's trials. */
  repeats: number;
  /** The server's pid, for its CPU time (throughput only; set by the runner). */
  serverPid?: number;
}

/** CPU time per request over a throughput trial's measured part, in µs: all
 * threads of the client's process, and of the server's. */
export interface CpuPerRequest {
  client: number;
  server: number;
}

/** What one client process measures. */
export type ServicePhase = 'roundTrip' | 'throughput';

export interface ServiceResult {
  mechanism: string;
  /** The round trip of the median trial by p50 (the slower of two): its p50 and p99. */
  p50: number;
  p99: number;
  /** Each round-trip trial's p50. */
  trialP50s: number[];
  /** The median of trialRates (medianOf). */
  requestsPerSec: number;
  trialRates: number[];
  /** The median trial's by rate (the slower of two): CPU per request. */
  cpuPerRequest: CpuPerRequest;
}

export interface RequestClient {
  request(value: unknown): Promise<unknown>;
  close(): void;
}

/** The small object of the other benchmarks, with a sequence number. */
const message = (seq: number) => ({ seq, ts: Date.now(), kind: 'tick', payload: Buffer.alloc(64, seq & 0xff) });

/** Sends one request and checks that its echo came back. */
function requester(client: RequestClient): () => Promise<void> {
  let seq = 0;
  return async () => {
    const sent = ++seq;
    const reply = (await client.request(message(sent))) as { seq: number };
    if (reply.seq !== sent) throw new Error(`reply ${reply.seq} to request ${sent}`);
  };
}

/** The round trip with one request in flight: p50 and p99 in µs. */
export async function roundTrips(client: RequestClient, spec: ServiceTrialSpec): Promise<{ p50: number; p99: number }> {
  const one = requester(client);
  const samples: number[] = [];
  for (const [ms, keep] of [[spec.warmMs, false], [spec.measureMs, true]] as const) {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const start = process.hrtime.bigint();
      await one();
      if (keep) samples.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  }
  samples.sort((a, b) => a - b);
  return {
    p50: samples[Math.floor(samples.length / 2)],
    p99: samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))],
  };
}

/** Both processes' CPU time so far, in µs (the server's in clock ticks). */
function cpuNow(serverPid: number | undefined): CpuPerRequest {
  const { user, system } = process.cpuUsage();
  return { client: user + system, server: serverPid === undefined ? NaN : processTicks(serverPid).own * MICROS_PER_TICK };
}

/** Requests a second with `inFlight` in flight, counted after the warm-up, and the
 * CPU time each request took the client and the server meanwhile. */
export async function throughput(client: RequestClient, spec: ServiceTrialSpec): Promise<{ requestsPerSec: number; cpuPerRequest: CpuPerRequest }> {
  const one = requester(client);
  let done = 0;
  /** When counting began, and both processes' CPU time then; undefined during the warm-up. */
  let counted: { since: number; cpu: CpuPerRequest } | undefined;
  const stopAt = performance.now() + spec.warmMs + spec.measureMs;
  const loop = async () => {
    while (performance.now() < stopAt) {
      await one();
      if (counted !== undefined) done++;
    }
  };
  setTimeout(() => (counted = { since: performance.now(), cpu: cpuNow(spec.serverPid) }), spec.warmMs).unref();
  await Promise.all(Array.from({ length: spec.inFlight }, loop));
  const cpu = cpuNow(spec.serverPid);
  const { since, cpu: before } = counted!;
  return {
    requestsPerSec: done / ((performance.now() - since) / 1000),
    cpuPerRequest: { client: (cpu.client - before.client) / done, server: (cpu.server - before.server) / done },
  };
}

function start<R>(role: 'server' | 'client', mechanism: string, args: string[]): TrialProcess<R> {
  return startTrialProcess<R>(trialScript, [role, mechanism, ...args], 'ignore', `${mechanism} ${role}`);
}

/** One measurement of one mechanism, in a fresh server and a fresh client; whatever it made is removed after. */
async function runPhase<R>(mechanism: string, phase: ServicePhase, spec: ServiceTrialSpec, prefix: string): Promise<R> {
  const onShm = mechanism === 'shmchan' || mechanism === 'channels';
  const address = onShm ? `${prefix}${mechanism}` : path.join(os.tmpdir(), `${prefix}${mechanism}.sock`);
  const server = start<never>('server', mechanism, [address]);
  const children = [server.child];
  try {
    await server.ready;
    const client = start<R>('client', mechanism, [address, phase, JSON.stringify({ ...spec, serverPid: server.child.pid })]);
    children.push(client.child);
    return await client.result;
  } finally {
    await stopTrialProcesses(children);
    if (!onShm) fs.rmSync(address, { force: true });
    else for (const file of fs.readdirSync('/dev/shm')) if (file.startsWith(address)) Channel.unlink(file);
  }
}

/**
 * Every mechanism, in `spec.repeats` rounds: each round measures every mechanism's
 * round trip and then its throughput once, each in fresh processes. The machine's
 * phases last minutes and move every row (bench/README.md); rounds spread each
 * mechanism's trials over the run, so that a phase falls on all of them alike and
 * the ratios compare like with like.
 */
export async function runServiceTrials(spec: ServiceTrialSpec, prefix: string, progress: (text: string) => void): Promise<ServiceResult[]> {
  type RateTrial = { requestsPerSec: number; cpuPerRequest: CpuPerRequest };
  const trials = serviceMechanisms.map(({ id }) => ({ id, latencies: [] as { p50: number; p99: number }[], rates: [] as RateTrial[] }));
  for (let round = 1; round <= spec.repeats; round++) {
    for (const { id, latencies, rates } of trials) {
      progress(`request/reply: ${id}${spec.repeats > 1 ? ` (round ${round} of ${spec.repeats})` : ''}...`);
      latencies.push(await runPhase<{ p50: number; p99: number }>(id, 'roundTrip', spec, prefix));
      rates.push(await runPhase<RateTrial>(id, 'throughput', spec, prefix));
    }
  }
  return trials.map(({ id, latencies, rates }) => {
    const { p50, p99 } = medianOf(latencies, (trial) => -trial.p50);
    const { requestsPerSec, cpuPerRequest } = medianOf(rates, (trial) => trial.requestsPerSec);
    return { mechanism: id, p50, p99, trialP50s: latencies.map((trial) => trial.p50), requestsPerSec, trialRates: rates.map((trial) => trial.requestsPerSec), cpuPerRequest };
  });
}

/** The table, with each mechanism's ratio to shmchan. */
export function serviceTable(results: ServiceResult[]): string {
  const shm = results.find((r) => r.mechanism === 'shmchan');
  const rows = results.map((r) => {
    const label = serviceMechanisms.find((m) => m.id === r.mechanism)?.label ?? r.mechanism;
    const ratio = (x: number) => (shm === undefined || r === shm ? '' : ` (${x.toFixed(1)}×)`);
    const cpu = `${r.cpuPerRequest.client.toFixed(1)} + ${r.cpuPerRequest.server.toFixed(1)} µs`;
    return `| ${label} | ${r.p50.toFixed(1)} µs${ratio(r.p50 / shm!.p50)} | ${r.p99.toFixed(1)} µs | ${Math.round(r.requestsPerSec / 1000)} k/s${ratio(shm!.requestsPerSec / r.requestsPerSec)} | ${cpu} |`;
  });
  const rounds = results[0]?.trialRates.length ?? 0;
  const method = rounds > 1 ? [`Request/reply: the median of ${rounds} rounds; each round measures every row once (round trip, then 64 in flight), each in fresh processes.`, ''] : [];
  return [...method, '| request/reply | round trip p50 (× shmchan) | p99 | 64 in flight (shmchan ×) | CPU per request there, client + server |', '|---|---:|---:|---:|---:|', ...rows].join('\n') + '\n';
}
