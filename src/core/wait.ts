// Waiting for data or room: try, spin briefly, then announce ourselves as a
// sleeper, look once more, and sleep on the segment's futex (POSIX) or
// semaphores (System V). The other side makes
// a system call only when it sees an announced sleeper, so a busy channel makes
// none. The steps are written once, as a generator of sleeps; a synchronous and
// an asynchronous driver carry them out.
import type { NativeError, NativeSegment, SleepOutcome } from './binding';
import * as L from './layout';
import { abortError, nativeCode } from './errors';

/** An attempt's answer when it should be retried later. */
export const AGAIN: unique symbol = Symbol('again');

/**
 * Upper bound of one sleep, by line. A sender waiting for room looks again every
 * 100 ms, whether its consumer still lives (ERR_PEER_GONE), and for room a
 * consumer freed without waking it (SpaceWaker). A receiver has nothing to look
 * for: deadlines and aborts end its sleep on their own, and every commit wakes
 * it; only a producer killed between its commit and its wake-up leaves a message
 * unannounced, and that is rare enough to wait a second for. A parked receiver
 * then costs its process ten times fewer wake-ups.
 */
const sliceMs = (which: number): number => (which === L.WAIT_DATA ? 1000 : 100);

/** How many polls of a spin come between two readings of the clock. */
const POLLS_PER_CLOCK = 64;

/**
 * Short sleeps that a plan asks for (sliceMs) double, one after the other, up to
 * this: they look for a change that nothing wakes us for (a claimant's death), and
 * a claimant that is alive but stopped (SIGSTOP, a debugger) may stay so for
 * minutes, while each look costs a wake-up. A commit still wakes us at once.
 */
const SHORT_SLICE_MAX_MS = 64;

export interface Sleep {
  which: number;
  sequence: number;
  ms: number;
}

export interface WaitPlan<T> {
  /** L.WAIT_DATA or L.WAIT_SPACE. */
  which: number;
  /** One try: a result, or AGAIN. May throw. */
  attempt(): T | typeof AGAIN;
  /** Called before each sleep and after each wake-up: throws if waiting must stop (closed, peer gone). */
  check(): void;
  /** How long to poll before sleeping; it adapts to how waits of this handle end. */
  spin: SpinBudget;
  /** How long one sleep may last now, when it must be shorter than usual. */
  sliceMs?(): number | undefined;
  onTimeout(): Error;
  /** A sleep that failed for good (e.g. -EIDRM: the semaphore set was removed). */
  onSleepFailure(failure: NativeError): unknown;
}

/** With no spin left, every this many waits one spins the full budget again. */
const PROBE_EVERY = 16;

/**
 * How long a handle's next wait on a line polls before it sleeps: from 0 up to
 * the handle's spinMicros. Polling pays when the other side answers within it;
 * when it does not, polling only burns CPU, and on a machine with more busy
 * processes than cores it takes the very core the other side needs (four
 * producers spinning on a full ring starve its one consumer). So a wait that the
 * polling caught doubles the budget (from at least 1 µs), and one that slept
 * anyway halves it, down to none.
 *
 * How long a wait that slept took says little: our own wake-up is in it. Judged
 * by that, a reply that comes just after the budget (a peer woken from sleep)
 * looks as quick as one the polling catches, and every such round trip would
 * poll the whole budget, sleep anyway and pay a wake-up: slower than not polling.
 * With none left, polling could never catch anything again, however quick the
 * other side became; so every PROBE_EVERY-th wait polls the full budget, and one
 * that catches the answer restores the budget at once.
 */
export class SpinBudget {
  private readonly micros: number[];
  /** Waits made on each line with no budget left: every PROBE_EVERY-th probes. */
  private readonly sinceNone = [0, 0];
  constructor(readonly maxMicros: number) {
    this.micros = [maxMicros, maxMicros];
  }

  /** How long the next wait on `which` polls. */
  current(which: number): number {
    const micros = this.micros[which];
    if (micros > 0) return micros;
    return ++this.sinceNone[which] % PROBE_EVERY === 0 ? this.maxMicros : 0;
  }

  /** A wait on `which` ended: `caught` by polling, or after it slept. */
  waited(which: number, caught: boolean): void {
    const now = this.micros[which];
    if (caught) this.micros[which] = now === 0 ? this.maxMicros : Math.min(this.maxMicros, Math.max(1, now * 2));
    else this.micros[which] = now < 1 ? 0 : now / 2;
  }
}

/** Sleepers this handle has announced in shared memory, so close() can withdraw
 * them even while a wait is in flight. */
export class Announcements {
  private readonly counts = [0, 0];
  constructor(private readonly i32: Int32Array) {}

  private index(which: number): number {
    return (which === L.WAIT_DATA ? L.OFF_DATA_WAITERS : L.OFF_SPACE_WAITERS) >> 2;
  }

  /** Announces a sleeper, arms the line (native/src/wait.c) and returns the
   * sequence to sleep on. */
  announce(which: number): number {
    this.counts[which]++;
    Atomics.add(this.i32, this.index(which), 1);
    const index = (which === L.WAIT_DATA ? L.OFF_DATA_SEQ : L.OFF_SPACE_SEQ) >> 2;
    for (let sequence = Atomics.load(this.i32, index); ; ) {
      if ((sequence & L.SEQ_ARMED) !== 0) return sequence;
      const seen = Atomics.compareExchange(this.i32, index, sequence, sequence | L.SEQ_ARMED);
      if (seen === sequence) return sequence | L.SEQ_ARMED;
      sequence = seen;
    }
  }

  withdraw(which: number): void {
    if (this.counts[which] === 0) return;
    this.counts[which]--;
    Atomics.sub(this.i32, this.index(which), 1);
  }

  withdrawAll(): void {
    for (const which of [L.WAIT_DATA, L.WAIT_SPACE]) while (this.counts[which] > 0) this.withdraw(which);
  }
}

/** The steps of one wait; `timeout` in milliseconds, undefined waits forever. A
 * plan holds no state of one wait, so a handle keeps its plans and reuses them. */
export function* waitSteps<T>(plan: WaitPlan<T>, announcements: Announcements, timeout: number | undefined): Generator<Sleep, T, SleepOutcome> {
  const result = plan.attempt();
  if (result !== AGAIN) return result;
  if (timeout === 0) throw plan.onTimeout();
  const start = performance.now();
  const spun = spinFor(plan, start, timeout);
  if (spun !== AGAIN) return spun;
  return yield* sleepUntilReady(plan, announcements, deadlineOf(start, timeout));
}

/** When a wait begun at `start` (performance.now()) times out. */
export function deadlineOf(start: number, timeout: number | undefined): number {
  return timeout === undefined ? Infinity : start + timeout;
}

/**
 * The spin of a wait begun at `start`, after a try that found nothing: polls for
 * the handle's spin budget, and answers AGAIN when the wait must sleep (at once
 * with a timeout of 0: sleepUntilReady then times out). It needs no promise and
 * no generator, so an asynchronous wait runs it before it makes them.
 */
export function spinFor<T>(plan: WaitPlan<T>, start: number, timeout: number | undefined): T | typeof AGAIN {
  if (timeout === 0) return AGAIN;
  const spinMicros = plan.spin.current(plan.which);
  if (spinMicros > 0) {
    const spinUntil = start + spinMicros / 1000;
    for (let polls = 1; ; polls++) {
      const result = plan.attempt();
      if (result !== AGAIN) {
        plan.spin.waited(plan.which, true);
        return result;
      }
      // The clock is read every few polls only: performance.now() costs more than
      // a poll, and the number it answers is garbage, whose collections are the
      // round trips' slow tail.
      if (polls % POLLS_PER_CLOCK === 0 && performance.now() >= spinUntil) break;
    }
  }
  plan.spin.waited(plan.which, false);
  return AGAIN;
}

/** The sleeping part of waitSteps: announce, look again, sleep, until a result. */
export function* sleepUntilReady<T>(plan: WaitPlan<T>, announcements: Announcements, deadline: number): Generator<Sleep, T, SleepOutcome> {
  let result: T | typeof AGAIN;
  let shortSlices = 0;
  for (;;) {
    plan.check();
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw plan.onTimeout();
    const sequence = announcements.announce(plan.which);
    let outcome: SleepOutcome;
    try {
      result = plan.attempt();
      if (result !== AGAIN) return result;
      const asked = plan.sliceMs?.();
      shortSlices = asked === undefined ? 0 : shortSlices + 1;
      const slice = asked === undefined ? sliceMs(plan.which) : Math.max(asked, Math.min(asked * 2 ** (shortSlices - 1), SHORT_SLICE_MAX_MS));
      outcome = yield { which: plan.which, sequence, ms: Math.max(1, Math.min(slice, Math.ceil(remaining))) };
    } finally {
      announcements.withdraw(plan.which);
    }
    plan.check();
    result = plan.attempt();
    if (result !== AGAIN) return result;
    // Only now: what the waker published before it removed a channel (a last
    // message, the end) is still taken above.
    if (outcome !== undefined) throw plan.onSleepFailure(outcome);
  }
}

export function waitSync<T>(steps: Generator<Sleep, T, SleepOutcome>, segment: NativeSegment): T {
  let step = steps.next();
  while (!step.done) step = steps.next(segment.waitSync(step.value.which, step.value.sequence, step.value.ms));
  return step.value;
}

/**
 * A segment's wait line has at most one native sleep at a time (the addon's
 * waiter threads, shared by every segment of the process, carry it out). Several
 * waits of one handle (two receive() calls at once, or receive() beside the
 * iterator) share it: a sleep requested while one is in flight joins it and
 * wakes with it. That is safe because a joining sleeper's sequence is never older
 * than the one in flight, so the shared sleep ends no later than its own would
 * have on a change it has seen. One that must end sooner than the sleep in
 * flight (a shorter timeout) is also woken by a timer of its own, and looks again.
 */
interface SharedLine {
  pending: boolean;
  /** When the sleep in flight ends on its own, on performance.now()'s clock. */
  endsAt: number;
  wakers: ((outcome: SleepOutcome) => void)[];
}
const sharedSleeps = new WeakMap<NativeSegment, SharedLine[]>();

function sleepAsync(segment: NativeSegment, sleep: Sleep, wake: (outcome: SleepOutcome) => void): void {
  let lines = sharedSleeps.get(segment);
  if (lines === undefined) sharedSleeps.set(segment, (lines = [0, 1].map(() => ({ pending: false, endsAt: 0, wakers: [] }))));
  const line = lines[sleep.which];
  if (line.pending && sleep.ms < line.endsAt - performance.now()) {
    // a waker of its own, so that its timer, if it fires after the sleep woke it, finds nothing
    const waker = (outcome: SleepOutcome) => wake(outcome);
    line.wakers.push(waker);
    wakeOnTime(line, waker, sleep.ms);
    return;
  }
  line.wakers.push(wake);
  if (line.pending) return;
  line.pending = true;
  line.endsAt = performance.now() + sleep.ms;
  try {
    segment.waitAsync(sleep.which, sleep.sequence, sleep.ms, (outcome) => {
      line.pending = false;
      for (const waker of line.wakers.splice(0)) waker(outcome);
    });
  } catch (error) {
    line.pending = false;
    line.wakers.length = 0;
    throw error;
  }
}

/** Wakes one joiner of a shared sleep after `ms`, unless the sleep woke it first.
 * Unreferenced: the sleep it joined decides whether the process stays alive. */
function wakeOnTime(line: SharedLine, waker: (outcome: SleepOutcome) => void, ms: number): void {
  setTimeout(() => {
    const at = line.wakers.indexOf(waker);
    if (at < 0) return;
    line.wakers.splice(at, 1);
    waker(undefined);
  }, ms).unref();
}

/** Runs the steps, sleeping on the addon's waiter threads so the event loop stays free. */
export function waitAsync<T>(
  steps: Generator<Sleep, T, SleepOutcome>,
  segment: NativeSegment,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let sleeping: Sleep | undefined;
    /** Whether onAbort listens: from the first sleep on. The steps before it run
     * synchronously, so nothing can abort them, and most waits of a busy channel end
     * there; a listener added and removed costs more than the rest of such a wait. */
    let listening = false;
    const onAbort = () => {
      if (sleeping !== undefined) segment.cancelWait(sleeping.which);
    };
    const finish = (settle: () => void) => {
      if (listening) signal!.removeEventListener('abort', onAbort);
      settle();
    };
    // the first call starts the steps; each later one passes a sleep's outcome in
    const advance = (outcome?: SleepOutcome) => {
      sleeping = undefined;
      let step: IteratorResult<Sleep, T>;
      try {
        if (signal?.aborted) {
          steps.return(undefined as T);
          return finish(() => reject(abortError(signal)));
        }
        step = steps.next(outcome);
      } catch (error) {
        return finish(() => reject(error));
      }
      if (step.done) return finish(() => resolve(step.value));
      sleeping = step.value;
      if (signal !== undefined && !listening) {
        listening = true;
        signal.addEventListener('abort', onAbort, { once: true });
      }
      try {
        sleepAsync(segment, sleeping, advance);
      } catch (error) {
        // The sleep needed a new waiter thread and none could start
        // (pthread_create: EAGAIN at the thread limit): this sleep failed. The
        // steps look once more, then end with it, and the handle stays usable.
        if (nativeCode(error) !== undefined) return advance(error as NativeError);
        steps.return(undefined as T);
        return finish(() => reject(error));
      }
    };
    advance();
  });
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for ms: for the rare short waits of a synchronous call (a
 * name about to appear, a lock about to be released). Nothing ever wakes it early. */
export function sleepThread(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
