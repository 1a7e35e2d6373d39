// The only place that loads the native addon; it types the addon once.
import path from 'node:path';
import nodeGypBuild from 'node-gyp-build';
import type { NativeStats } from './stats';

export type { NativeStats };

/** A mapped segment. Results below zero are -errno. */
export interface NativeSegment {
  /** The whole mapping (header, then ring); detached by close(). */
  buffer(): ArrayBuffer;
  /** System V: the key (unsigned) and the ids of the segment and its semaphore set. */
  ids(): { key: number; shmid: number; semid: number };
  claimConsumer(): number;
  /** The producer slot index, or -errno. */
  claimProducer(): number;
  /** SPSC: the tail a new producer starts from, or -errno. */
  recoverTail(): number;
  consumerGone(): boolean;
  /** MPSC: whether producer slot `slot` is held by the live process `pid`. */
  claimantAlive(slot: number, pid: number): boolean;
  stats(): NativeStats;
  wake(which: number): void;
  /** 0 when woken, -ETIMEDOUT, -EINTR, or -EIDRM (System V: the semaphore set was removed). Blocks the calling thread. */
  waitSync(which: number, expected: number, timeoutMs: number): number;
  /** Sleeps on a native thread; calls back on this thread with 0, -ETIMEDOUT, -ECANCELED or -EIDRM. */
  waitAsync(which: number, expected: number, timeoutMs: number, callback: (rc: number) => void): void;
  cancelWait(which: number): void;
  end(): void;
  /** Releases roles, stops waiter threads, unmaps. */
  close(): void;
}

export interface NativeCreateOptions {
  capacity: number;
  mode: number;
  maxMessageSize: number;
  codec: number;
  permissions: number;
}

/** Offsets and constants of the wire format (native/include/shmchan.h). */
export interface Layout {
  MAGIC: number;
  VERSION: number;
  HEADER_SIZE: number;
  MIN_CAPACITY: number;
  MAX_CAPACITY: number;
  NAME_MAX: number;
  MAX_PRODUCERS: number;
  OFF_MAGIC: number;
  OFF_VERSION: number;
  OFF_MODE: number;
  OFF_CAPACITY: number;
  OFF_MAX_MESSAGE: number;
  OFF_CODEC: number;
  OFF_BACKEND: number;
  OFF_PERMISSIONS: number;
  OFF_KEY: number;
  OFF_SEMID: number;
  OFF_ENDED: number;
  OFF_TAIL: number;
  OFF_HEAD: number;
  OFF_RELEASING: number;
  CLAIM_FLAG: number;
  CLAIM_SLOT_SHIFT: number;
  OFF_RECV_MESSAGES: number;
  OFF_RECV_BYTES: number;
  OFF_DATA_SEQ: number;
  OFF_DATA_WAITERS: number;
  OFF_SPACE_SEQ: number;
  OFF_SPACE_WAITERS: number;
  OFF_NAME: number;
  OFF_PRODUCERS: number;
  PRODUCER_SIZE: number;
  PRODUCER_MESSAGES: number;
  PRODUCER_BYTES: number;
  SYSV_SLOTS: number;
  SYSV_NSEMS: number;
  OFF_SLEEPERS: number;
  OFF_CREATOR: number;
  OFF_CREATED_MS: number;
  OFF_HEAD_POSITION: number;
  PRODUCER_CHECKPOINT_SEQ: number;
  PRODUCER_CHECKPOINT_TAIL: number;
  PRODUCER_CHECKPOINT_SOURCE: number;
  PRODUCER_IN_FLIGHT_SEQ: number;
  MODE_SPSC: number;
  MODE_MPSC: number;
  CODEC_RAW: number;
  CODEC_MSGPACK: number;
  CODEC_CUSTOM: number;
  CODEC_MSGPACK_RECORDS: number;
  OFF_STRUCTURES_LOCK: number;
  OFF_STRUCTURES_LENGTH: number;
  OFF_STRUCTURES: number;
  STRUCTURES_SIZE: number;
  MAX_STRUCTURES: number;
  BACKEND_POSIX: number;
  BACKEND_SYSV: number;
  RECORD_HEADER: number;
  RECORD_DATA: number;
  RECORD_PADDING: number;
  WAIT_DATA: number;
  WAIT_SPACE: number;
}

interface Binding {
  /** Throws an Error with `errno` (negative) and `syscall`. */
  createPosix(name: string, options: NativeCreateOptions): NativeSegment;
  /** Throws like createPosix; timeoutMs bounds the wait for an initialising creator. */
  openPosix(name: string, timeoutMs: number): NativeSegment;
  unlinkPosix(name: string): number;
  /** Keys are passed and returned as unsigned 32-bit numbers. Throws like createPosix. */
  createSysv(name: string, key: number, options: NativeCreateOptions): NativeSegment;
  openSysv(name: string, key: number, timeoutMs: number): NativeSegment;
  /** 0, or -errno: -ENOENT, -EEXIST (the key holds another channel), -EPROTONOSUPPORT. */
  unlinkSysv(name: string, key: number): number;
  /** Removes a segment and its semaphore set by id (errors ignored: already gone). */
  removeSysv(shmid: number, semid: number): void;
  /** The name of the channel that holds a key, or -errno. */
  sysvHolder(key: number): string | number;
  /** The key a System V channel gets from its name (FNV-1a). */
  sysvKeyOfName(name: string): number;
  /** ftok(3): the key as an unsigned number, or -errno. */
  ftok(path: string, projectId: number): number;
  checkName(name: string): number;
  maxMessageLimit(capacity: number): number;
  layout: Layout;
}

// SHMCHAN_ADDON_PATH loads another build of the addon, e.g. the sanitizer build
// that `npm run test:asan` makes; otherwise node-gyp-build finds build/Release or
// the prebuild for this platform.
export const native: Binding = process.env.SHMCHAN_ADDON_PATH
  ? require(path.resolve(process.env.SHMCHAN_ADDON_PATH))
  : nodeGypBuild(path.join(__dirname, '..', '..'));
/** The addon's layout constants, copied into a plain object: the addon builds its
 * object one property at a time and V8 keeps that one as a dictionary, where
 * each load (the data path makes about ten per message) is a lookup instead of
 * a constant. */
export const layout: Layout = Object.freeze({ ...native.layout });
