// The only place that loads the native addon; it types the addon once.
//
// Every failure of a native call is thrown the one way Node's own system errors
// are (a NativeError); errors.ts turns it into a ShmChanError, and the callers
// decide which failures they expect. The wire format's constants come from
// layout.ts, generated from the C header, not from the addon.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import nodeGypBuild from 'node-gyp-build';
import type { NativeStats } from './stats';

export type { NativeStats };

/** What every native call throws when it fails. */
export interface NativeError extends Error {
  /** The errno name, e.g. 'ENOENT'. */
  code: string;
  /** The negative errno. */
  errno: number;
  /** The system call that failed, when there is one. */
  syscall?: string;
}

/** How a sleep ended: undefined when it simply ended (woken, timed out,
 * interrupted, cancelled: look again), or the error that ends waiting (EIDRM:
 * the System V semaphore set was removed). */
export type SleepOutcome = NativeError | undefined;

/** A mapped segment. */
export interface NativeSegment {
  /** The whole mapping (header, then ring); detached by close(). */
  buffer(): ArrayBuffer;
  /** System V: the key (unsigned) and the ids of the segment and its semaphore set. */
  ids(): { key: number; shmid: number; semid: number };
  /** Throws EBUSY while another live handle holds the role. 'mpmc', 'broadcast':
   * the consumer slot taken; throws EUSERS when every allowed slot is held. */
  claimConsumer(): number;
  /** The producer slot index. Throws EBUSY (spsc: the role is held) or EUSERS (mpsc: every slot is). */
  claimProducer(): number;
  /** SPSC: the tail a new producer starts from. */
  recoverTail(): number;
  consumerGone(): boolean;
  /** MPSC: whether producer slot `slot` is held by a live handle in generation `generation`. */
  claimantAlive(slot: number, generation: number): boolean;
  /** This handle's claim marker (its slot and the slot's generation), once it holds a slot. */
  claimMarker(): number;
  /** Whether another handle, in any process, has the channel open (it is not stale). */
  inUse(): boolean;
  stats(): NativeStats;
  /** Wakes the sleepers of a wait line if one armed it (shmchan_wake_armed). */
  wake(which: number): void;
  /** Blocks the calling thread. */
  waitSync(which: number, expected: number, timeoutMs: number): SleepOutcome;
  /** Sleeps on one of the addon's waiter threads; calls back on this thread. Throws
   * EBUSY if this line already has a sleep pending, or pthread_create's error when
   * the sleep needed a new thread and none could start. */
  waitAsync(which: number, expected: number, timeoutMs: number, callback: (outcome: SleepOutcome) => void): void;
  cancelWait(which: number): void;
  /** Whether pending and later waits keep the event loop alive (they do by default). */
  setRef(refed: boolean): void;
  end(): void;
  /** Ends pending sleeps (their callbacks still run), releases roles, unmaps. */
  close(): void;
}

export interface NativeCreateOptions {
  capacity: number;
  mode: number;
  maxMessageSize: number;
  codec: number;
  permissions: number;
  /** 'broadcast': subscribers at once, 1..64 (ignored by other modes). */
  maxConsumers: number;
  /** 'broadcast': OVERFLOW_*. */
  overflow: number;
}

interface Binding {
  createPosix(name: string, options: NativeCreateOptions): NativeSegment;
  /** timeoutMs bounds the wait for an initialising creator (then ETIMEDOUT). `inspect`:
   * to read it only, not counting as open (shmchan ls, stat, top; native/src/segment.h). */
  openPosix(name: string, timeoutMs: number, inspect?: boolean): NativeSegment;
  unlinkPosix(name: string): void;
  /** Removes a stale channel (no handle has it open): the number of unread messages
   * it held. Throws EBUSY (in use), ENOTEMPTY with `unread` (messages wait, not
   * forced), ENOENT, EPROTONOSUPPORT (not a channel of this version)... */
  removeStalePosix(name: string, force: boolean): number;
  /** Keys are passed and returned as unsigned 32-bit numbers. */
  createSysv(name: string, key: number, options: NativeCreateOptions): NativeSegment;
  openSysv(name: string, key: number, timeoutMs: number, inspect?: boolean): NativeSegment;
  /** Throws ENOENT, EEXIST (the key holds another channel), EPROTONOSUPPORT (not a channel). */
  unlinkSysv(name: string, key: number): void;
  /** As removeStalePosix; also EEXIST (the key holds another channel). */
  removeStaleSysv(name: string, key: number, force: boolean): number;
  /** Removes a segment and its semaphore set by id (errors ignored: already gone). */
  removeSysv(shmid: number, semid: number): void;
  /** The name of the channel that holds a key. Throws EAGAIN (still being
   * initialised), EPROTONOSUPPORT (not a channel), or what reading it failed with. */
  sysvHolder(key: number): string;
  /** The key a System V channel gets from its name (FNV-1a). */
  sysvKeyOfName(name: string): number;
  /** ftok(3): the key as an unsigned number. */
  ftok(path: string, projectId: number): number;
  validName(name: string): boolean;
  maxMessageLimit(capacity: number): number;
  /** How this environment's asynchronous sleeps on POSIX segments are carried out. */
  waitMechanism(): 'io_uring' | 'futex_waitv' | 'threads';
}

// SHMCHAN_ADDON_PATH loads another build of the addon, e.g. the sanitizer build
// that `npm run test:asan` makes; otherwise node-gyp-build finds build/Release or
// the prebuild for this platform.
export const native: Binding = process.env.SHMCHAN_ADDON_PATH
  ? require(path.resolve(process.env.SHMCHAN_ADDON_PATH))
  : load(path.join(__dirname, '..', '..'));

/** node-gyp-build's build, or an error that says what to do when there is none. */
function load(root: string): Binding {
  try {
    return nodeGypBuild(root);
  } catch (error) {
    const platform = `${process.platform}-${process.arch}`;
    throw new Error(
      `shmchan has no native addon for ${platform}: no prebuilt binary fits (${prebuiltPlatforms(root)}) and none was compiled at install. ` +
        `npm 11 runs a dependency's install script only when the project allows it: run 'npm install-scripts approve shmchan' ` +
        `(or list shmchan in allowScripts), then 'npm rebuild shmchan', which compiles it (python3, make and a C/C++ compiler needed)`,
      { cause: error },
    );
  }
}

function prebuiltPlatforms(root: string): string {
  try {
    const found = readdirSync(path.join(root, 'prebuilds'));
    return found.length === 0 ? 'none is shipped' : `prebuilt: ${found.join(', ')}`;
  } catch {
    return 'none is shipped';
  }
}
