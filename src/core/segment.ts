// A channel's shared memory under its name: creating, opening and removing the
// native segment (POSIX or System V), with each native failure turned into the
// error that says what to do.
import { statSync } from 'node:fs';
import { native, type NativeCreateOptions, type NativeSegment } from './binding';
import { abortError, fromNative, incompatible, nativeCode, notFound, staleChannelExists, timedOut, type ShmChanError } from './errors';
import { failed, staleRemoved, type ChannelEvent } from './diagnostics';
import type { Backend, Mode, Place } from './options';
import { hexKey, keyTakenError } from './sysv';
import { sleepThread } from './wait';

/** How long an opener that waits for a name pauses between looks. */
const NAME_POLL_MS = 5;
/** The longest pause of Channel.connect between two looks. */
const MAX_CONNECT_POLL_MS = 50;

/** How often create looks again after it removed a stale channel and found the
 * name taken anew, or gone: each time another process got there first. */
const REPLACE_ATTEMPTS = 3;

/**
 * Creates a channel's segment. A name (System V: a key) held by a stale channel
 * of that name (no live handle has it open) is taken over: silently when the
 * channel holds no unread message, with `replaceStale` when it does; otherwise
 * ERR_CHANNEL_EXISTS says what waits in it.
 */
export function createSegment(place: Place & { mode?: Mode }, options: NativeCreateOptions, replaceStale = false): NativeSegment {
  const { channel, key } = place;
  for (let attempt = 0; ; attempt++) {
    try {
      return key === undefined ? native.createPosix(channel, options) : native.createSysv(channel, key, options);
    } catch (error) {
      if (nativeCode(error) !== 'EEXIST' || attempt === REPLACE_ATTEMPTS) throw nativeFailure(error, place, 'create');
      if (removeStale(place, replaceStale) === 'kept') throw nativeFailure(error, place, 'create');
    }
  }
}

/**
 * Removes the channel at `place` if it is stale: 'removed', 'gone' (removed
 * or replaced by another process meanwhile), or 'kept' (a live handle has it
 * open, or it is no channel of this version). A stale channel with unread
 * messages throws ERR_CHANNEL_EXISTS saying so, unless `force`.
 */
export function removeStale(place: Place, force: boolean): 'removed' | 'gone' | 'kept' {
  const { channel, key } = place;
  try {
    const unread = key === undefined ? native.removeStalePosix(channel, force) : native.removeStaleSysv(channel, key, force);
    staleRemoved(channel, unread);
    return 'removed';
  } catch (error) {
    const code = nativeCode(error);
    if (code === 'ENOTEMPTY') throw staleChannelExists(channel, (error as { unread?: number }).unread ?? 0);
    return code === 'ENOENT' ? 'gone' : 'kept';
  }
}

/**
 * Opens a channel's segment, waiting up to `timeout` ms for a creator that is
 * still initialising it, and with `waitForName` as long for the name to appear.
 * Blocks the calling thread while it waits.
 */
export function openSegment(place: Place, timeout: number, waitForName: boolean): NativeSegment {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      // the native wait takes an int32 of milliseconds; Infinity would become 0
      return openNow(place, Math.min(2 ** 31 - 1, Math.max(0, deadline - Date.now())));
    } catch (error) {
      const code = nativeCode(error);
      if (waitForName && code === 'ENOENT') {
        if (Date.now() < deadline) {
          sleepThread(NAME_POLL_MS);
          continue;
        }
        throw failed(eventAt(place), notFound(notAppeared(place.channel, timeout)));
      }
      if (code === 'ETIMEDOUT') throw failed(eventAt(place), notInitialised(place.channel, timeout));
      throw nativeFailure(error, place, 'open');
    }
  }
}

/**
 * Opens a channel's segment once it exists and its creator has initialised it,
 * looking again with growing pauses, so the event loop runs meanwhile. Waits as
 * long as it takes unless `timeout` (ERR_TIMEOUT) or `signal` (AbortError) stops it.
 */
export function connectSegment(place: Place, timeout: number | undefined, signal: AbortSignal | undefined): Promise<NativeSegment> {
  const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let pause = 1;
    const settle = (finish: () => void) => {
      signal?.removeEventListener('abort', onAbort);
      finish();
    };
    const onAbort = () => {
      clearTimeout(timer);
      settle(() => reject(abortError(signal!)));
    };
    const attempt = () => {
      let segment: NativeSegment;
      try {
        segment = openNow(place, 0);
      } catch (error) {
        const code = nativeCode(error);
        if (code !== 'ENOENT' && code !== 'ETIMEDOUT') return settle(() => reject(nativeFailure(error, place, 'open')));
        const left = deadline - Date.now();
        if (left <= 0)
          return settle(() =>
            reject(
              failed(
                eventAt(place),
                code === 'ENOENT' ? timedOut(notAppeared(place.channel, timeout!)) : notInitialised(place.channel, timeout!),
              ),
            ),
          );
        pause = Math.min(pause * 2, MAX_CONNECT_POLL_MS);
        timer = setTimeout(attempt, Math.min(pause, left));
        return;
      }
      settle(() => resolve(segment));
    };
    if (signal?.aborted) return reject(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    attempt();
  });
}

/** One try at opening; `waitMs` bounds the wait for an initialising creator. */
function openNow(place: Place, waitMs: number): NativeSegment {
  const { channel, key } = place;
  return key === undefined ? native.openPosix(channel, waitMs) : native.openSysv(channel, key, waitMs);
}

function notAppeared(channel: string, timeout: number): string {
  return `channel '${channel}' did not appear within ${timeout} ms (is the process that creates it running?)`;
}

function notInitialised(channel: string, timeout: number): ShmChanError {
  return timedOut(
    `channel '${channel}' exists but was not initialised within ${timeout} ms (its creator may have died; remove it with Channel.unlink)`,
  );
}

/** Removes a channel's name; true if it existed. */
export function unlinkName(place: Place): boolean {
  const { channel, key } = place;
  try {
    if (key === undefined) native.unlinkPosix(channel);
    else native.unlinkSysv(channel, key);
    return true;
  } catch (error) {
    const code = nativeCode(error);
    if (code === 'ENOENT') return false;
    if (key !== undefined && code === 'EEXIST') throw keyTakenError(channel, key, 'remove', undefined);
    if (key !== undefined && code === 'EPROTONOSUPPORT')
      throw incompatible(
        `refusing to remove channel '${channel}': its System V key ${hexKey(key)} holds a segment that is not a shmchan channel (see ipcs -m)`,
      );
    throw fromNative(error, { channel });
  }
}

/** A native create/open failure as a ShmChanError; for System V, a taken key
 * names whatever holds it. */
function nativeFailure(error: unknown, place: Place & { mode?: Mode }, action: 'create' | 'open'): unknown {
  if (place.key !== undefined && nativeCode(error) === 'EEXIST')
    return failed(eventAt(place), keyTakenError(place.channel, place.key, action, (error as { syscall?: string }).syscall));
  return failed(eventAt(place), fromNative(error, { channel: place.channel }));
}

/** The diagnostics event of a channel that has no handle yet (mode: known to create only). */
function eventAt(place: Place & { mode?: Mode }): ChannelEvent {
  return { name: place.channel, backend: place.key === undefined ? 'posix' : 'sysv', mode: place.mode };
}

// ---- removal when a handle closes (unlinkOnClose) ----

/** What a handle with unlinkOnClose removes: a POSIX name if it still names the
 * same file, or a System V segment and semaphore set by id. Either way a channel
 * recreated under the name since is left alone. */
export type Removal =
  | { backend: 'posix'; name: string; inode: number | undefined }
  | { backend: 'sysv'; shmid: number; semid: number };

export function removalOf(backend: Backend, channel: string, segment: NativeSegment): Removal {
  if (backend === 'posix') return { backend, name: channel, inode: inodeOf(channel) };
  const { shmid, semid } = segment.ids();
  return { backend, shmid, semid };
}

export function remove(removal: Removal): void {
  if (removal.backend === 'sysv') native.removeSysv(removal.shmid, removal.semid);
  else if (removal.inode !== undefined && inodeOf(removal.name) === removal.inode) unlinkName({ channel: removal.name, key: undefined });
}

/** The inode behind a POSIX name, so unlinkOnClose never removes a channel recreated under it. */
function inodeOf(name: string): number | undefined {
  try {
    return statSync(`/dev/shm/${name}`).ino;
  } catch {
    return undefined;
  }
}
