// System V specifics around the native calls: which key a channel uses, and
// what to say when a key is taken by something else.
import { native } from './binding';
import { describe, errorFromErrno, fromNative, invalidArg, nativeCode, printable, type ShmChanError } from './errors';

/** A System V key: a number, or the path and project id given to ftok(3). */
export type SysvKey = number | { path: string; projectId: number };

/** How ipcs shows a key. */
export function hexKey(key: number): string {
  return `0x${key.toString(16).padStart(8, '0')}`;
}

/**
 * The key (as an unsigned 32-bit number) of a System V channel: the `key` option,
 * or else the one derived from the name (FNV-1a, see shmchan_sysv_key_of_name).
 */
export function sysvKey(option: unknown, channel: string): number {
  if (option === undefined) return native.sysvKeyOfName(channel);
  if (typeof option === 'number') {
    if (!Number.isInteger(option) || option < -(2 ** 31) || option > 2 ** 32 - 1 || option === 0)
      throw invalidArg(
        `key must be a non-zero integer from -2147483648 to 4294967295 (a key_t), got ${describe(option)}; 0 is IPC_PRIVATE, which no other process can open`,
      );
    return option >>> 0;
  }
  if (option !== null && typeof option === 'object') {
    const { path, projectId } = option as { path?: unknown; projectId?: unknown };
    if (typeof path !== 'string' || path === '' || path.includes('\0'))
      throw invalidArg(`key.path must be the path of an existing file, got ${describe(path)}`);
    if (typeof projectId !== 'number' || !Number.isInteger(projectId) || projectId < 1 || projectId > 255)
      throw invalidArg(`key.projectId must be an integer from 1 to 255 (ftok uses its low 8 bits), got ${describe(projectId)}`);
    try {
      return native.ftok(path, projectId);
    } catch (error) {
      throw fromNative(
        error,
        { channel },
        `channel '${channel}': no System V key from { path: ${JSON.stringify(path)}, projectId: ${projectId} } (ftok failed: the file must exist and be reachable)`,
      );
    }
  }
  throw invalidArg(`key must be a number or { path, projectId }, got ${describe(option)}`);
}

/** Rejects a key given for the POSIX backend, where it would silently mean nothing. */
export function rejectKey(option: unknown): void {
  if (option !== undefined) throw invalidArg("key is a System V option: pass backend: 'sysv' with it");
}

/**
 * The error for a System V key that is in use by something other than the named
 * channel. `action` says what was tried: 'create', 'open' or 'remove'.
 */
export function keyTakenError(
  channel: string,
  key: number,
  action: 'create' | 'open' | 'remove',
  syscall: string | undefined,
): ShmChanError {
  const k = hexKey(key);
  const context = { channel, syscall };
  if (syscall === 'semget')
    return errorFromErrno(
      'EEXIST',
      context,
      `cannot create channel '${channel}': System V key ${k} is already used by a semaphore set (see ipcs -s; one left behind can be removed with ipcrm -S ${k}), or pass another { key }`,
    );
  const holder = holderOf(key);
  if (holder.channel === channel) return errorFromErrno('EEXIST', context);
  const what =
    holder.channel !== undefined
      ? `channel '${printable(holder.channel)}'`
      : holder.failure === 'EAGAIN'
        ? `a segment that is still being initialised (if its creator died, remove it with ipcrm -M ${k})`
        : holder.failure === 'EPROTONOSUPPORT'
          ? 'a segment that is not a shmchan channel (see ipcs -m)'
          : `a segment this process cannot read (${holder.failure}; see ipcs -m)`;
  const derived = key === native.sysvKeyOfName(channel);
  const advice =
    action === 'create'
      ? `pass another { key } to create '${channel}'`
      : derived
        ? `this key is derived from the name: if '${channel}' was created with a { key }, pass that key`
        : `is this the key '${channel}' was created with?`;
  const verb = action === 'create' ? 'cannot create' : action === 'open' ? 'cannot open' : 'refusing to remove';
  return errorFromErrno(
    'EEXIST',
    context,
    `${verb} channel '${channel}': its System V key ${k} is held by ${what}; ${advice}`,
  );
}

/** The channel that holds a key, or the errno name of why that cannot be told. */
export function holderOf(key: number): { channel: string; failure?: undefined } | { channel?: undefined; failure: string } {
  try {
    return { channel: native.sysvHolder(key) };
  } catch (error) {
    const code = nativeCode(error);
    if (code === undefined) throw error;
    return { failure: code };
  }
}
