// Random corruption of live channels, in rounds. A consumer and two producer
// processes, and a scribbler process, live for the whole run; each round gives
// them a new channel: the peers call every method of their role on it while
// the scribbler writes a few random or targeted corruptions into it. Shared by
// corruption.test.ts (CI-sized) and test/stress/corruption.stress.ts.
import { expect } from 'vitest';
import { Channel } from '../../dist/index.js';
import { startFixture, uniqueName, type Fixture } from '../helpers';

export interface Tally {
  rounds: number;
  calls: number;
  outcomes: Record<string, Record<string, number>>;
  scribbles: Record<string, number>;
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

/** The next JSON line a long-lived fixture prints. */
function nextReport(fixture: Fixture, after: number): Promise<any> {
  return new Promise((resolve, reject) => {
    const look = () => {
      const lines = fixture.stdout().split('\n').slice(after);
      const json = lines.find((line) => line.startsWith('{'));
      if (json !== undefined) return resolve(JSON.parse(json));
      return false;
    };
    if (look() !== false) return;
    const onData = () => {
      if (look() !== false) fixture.child.stdout!.off('data', onData);
    };
    fixture.child.stdout!.on('data', onData);
    fixture.exited.then(({ code, signal }) =>
      reject(new Error(`a fixture exited (${code ?? signal}) during the round\nstderr: ${fixture.stderr()}`)),
    );
  });
}

export class CorruptionRig {
  readonly tally: Tally = { rounds: 0, calls: 0, outcomes: {}, scribbles: {} };
  private readonly consumer = startFixture('corruption-peer.mjs', ['consumer']);
  private readonly producers = [startFixture('corruption-peer.mjs', ['producer']), startFixture('corruption-peer.mjs', ['producer'])];
  private readonly scribbler = startFixture('scribbler.mjs');

  private get all(): Fixture[] {
    return [this.consumer, ...this.producers, this.scribbler];
  }

  /**
   * One round on a new channel. Seeds alternate spsc/mpsc, msgpack/raw and the
   * ring size. Fails if any process dies, hangs (only a generous limit, to turn
   * a hang into a failure) or meets an outcome that is not allowed.
   */
  async round(seed: number, ms: number, scribbles: number): Promise<void> {
    const mode = seed % 2 === 0 ? 'spsc' : 'mpsc';
    const codec = seed % 3 === 2 ? 'raw' : 'msgpack';
    const capacity = seed % 5 < 3 ? 4096 : 16384;
    const where = `seed ${seed} (${mode}, ${codec}, ${capacity} bytes)`;
    const name = uniqueName(`corrupt-${seed}`);
    const channel = Channel.create(name, { capacity, mode, codec });
    const peers = mode === 'mpsc' ? [this.consumer, ...this.producers] : [this.consumer, this.producers[0]];
    const hang = setTimeout(() => this.all.forEach((p) => p.child.kill('SIGKILL')), ms + 60_000);
    try {
      const before = this.all.map((p) => p.stdout().split('\n').length - 1);
      const reports = peers.map((peer) => nextReport(peer, before[this.all.indexOf(peer)]));
      for (const peer of peers) peer.child.stdin!.write(`${name} ${seed} ${ms} ${codec}\n`);
      await Promise.all(peers.map((peer) => peer.line(`running ${name}`)));
      const pids = peers.map((peer) => peer.child.pid).join(' ');
      const scribbled = nextReport(this.scribbler, before[3]);
      this.scribbler.child.stdin!.write(`${name} ${seed} ${scribbles} ${capacity} ${pids}\n`);
      add(this.tally.scribbles, await scribbled);
      for (const report of await Promise.all(reports)) {
        expect(report.unexpected, `${where}: unexpected outcomes`).toEqual([]);
        this.tally.calls += report.calls;
        for (const [method, counts] of Object.entries(report.outcomes as Record<string, Record<string, number>>))
          add((this.tally.outcomes[method] ??= {}), counts);
      }
      this.tally.rounds++;
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(hang);
      channel.close();
    }
  }

  /** Ends the processes; none may have died by a signal or written to stderr. */
  async stop(): Promise<void> {
    for (const fixture of this.all) fixture.child.stdin!.end();
    const exits = await Promise.all(this.all.map((p) => p.exited));
    exits.forEach(({ code, signal }, i) =>
      expect({ code, signal, stderr: this.all[i].stderr() }, 'a process died or complained').toEqual({ code: 0, signal: null, stderr: '' }),
    );
  }

  /** The codes met, over every method. */
  codes(): Set<string> {
    return new Set(Object.values(this.tally.outcomes).flatMap((counts) => Object.keys(counts)));
  }
}
