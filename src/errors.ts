import { constants } from 'node:os';

export type ErrorCode =
  | 'ERR_INVALID_NAME'
  | 'ERR_INVALID_ARG'
  | 'ERR_CHANNEL_NOT_FOUND'
  | 'ERR_CHANNEL_EXISTS'
  | 'ERR_PERMISSION'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_TIMEOUT'
  | 'ERR_CLOSED'
  | 'ERR_ENDED'
  | 'ERR_ROLE_TAKEN'
  | 'ERR_TOO_MANY_PRODUCERS'
  | 'ERR_PEER_GONE'
  | 'ERR_CORRUPT'
  | 'ERR_INCOMPATIBLE'
  | 'ERR_ENCODE'
  | 'ERR_DECODE'
  | 'ERR_SYSTEM';

export class ShmChanError extends Error {
  readonly code: ErrorCode;
  /** For errors from a system call: the errno name, e.g. 'ENOSPC'. */
  readonly errno?: string;
  /** For errors from a system call: the call, e.g. 'ftruncate'. */
  readonly syscall?: string;

  constructor(code: ErrorCode, message: string, details: { errno?: string; syscall?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ShmChanError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
  }
}

/** errno numbers by name; the core returns them negated. Node's table lacks two
 * that the core uses (Linux values). */
export const errno: Readonly<Record<string, number>> = { ...constants.errno, ESHUTDOWN: 108, EUSERS: 87 };

const errnoNames = new Map<number, string>(Object.entries(errno).map(([name, value]) => [value, name]));

/** The errno name of a negative result from the native core, e.g. -2 -> 'ENOENT'. */
export function errnoName(rc: number): string {
  return errnoNames.get(-rc) ?? `E${-rc}`;
}

/** What the failed call was doing, for the message. */
export interface ErrorContext {
  channel: string;
  syscall?: string;
}

/**
 * The one mapping from a core result (-errno) to a ShmChanError. Callers that know
 * better (a role, a size) build their own message and pass it as `message`.
 */
export function errorFromErrno(rc: number, context: ErrorContext, message?: string): ShmChanError {
  const name = errnoName(rc);
  const ch = `channel '${context.channel}'`;
  const byCall = context.syscall === undefined ? undefined : codeOfSyscall[context.syscall];
  if (byCall !== undefined)
    return new ShmChanError(byCall, message ?? `${ch}: ${context.syscall} failed with ${name}`, {
      errno: name,
      syscall: context.syscall,
    });
  const code = codeOfErrno[name];
  if (code !== undefined) return new ShmChanError(code, message ?? defaultMessage(code, ch), { errno: name });
  const call = context.syscall ?? 'a system call';
  return new ShmChanError('ERR_SYSTEM', message ?? systemMessage(name, ch, call), {
    errno: name,
    syscall: context.syscall,
  });
}

/** Calls whose failure means a bad option rather than a system problem. */
const codeOfSyscall: Record<string, ErrorCode> = {
  ftok: 'ERR_INVALID_ARG',
};

function systemMessage(name: string, ch: string, call: string): string {
  if (name === 'EIDRM')
    return `${ch} was removed while in use: its System V semaphore set is gone (ipcrm, or Channel.unlink), so nothing can wake a waiting call (${call} failed with EIDRM); close this handle and create the channel again`;
  return `${ch}: ${call} failed with ${name}`;
}

const codeOfErrno: Record<string, ErrorCode> = {
  ENOENT: 'ERR_CHANNEL_NOT_FOUND',
  EEXIST: 'ERR_CHANNEL_EXISTS',
  EACCES: 'ERR_PERMISSION',
  EPERM: 'ERR_PERMISSION',
  EBADMSG: 'ERR_CORRUPT',
  EPROTONOSUPPORT: 'ERR_INCOMPATIBLE',
  ETIMEDOUT: 'ERR_TIMEOUT',
  EBUSY: 'ERR_ROLE_TAKEN',
  EUSERS: 'ERR_TOO_MANY_PRODUCERS',
  EPIPE: 'ERR_PEER_GONE',
  ESHUTDOWN: 'ERR_ENDED',
  EMSGSIZE: 'ERR_MESSAGE_TOO_LARGE',
  EINVAL: 'ERR_INVALID_ARG',
  EBADF: 'ERR_CLOSED',
};

function defaultMessage(code: ErrorCode, ch: string): string {
  switch (code) {
    case 'ERR_CHANNEL_NOT_FOUND':
      return `${ch} does not exist (create it first, or pass { timeout } to wait for it)`;
    case 'ERR_CHANNEL_EXISTS':
      return `${ch} already exists (open it with Channel.open, or remove it with Channel.unlink)`;
    case 'ERR_PERMISSION':
      return `${ch}: permission denied (it belongs to another user or its permissions exclude you; see 'permissions' in Channel.create)`;
    case 'ERR_CORRUPT':
      return `${ch} is corrupt: its shared memory holds an impossible cursor, length or field (another process wrote into it); remove and recreate it`;
    case 'ERR_INCOMPATIBLE':
      return `${ch} is not a shmchan channel of this version (wrong magic, version or layout); remove it or open it with a matching shmchan`;
    case 'ERR_TIMEOUT':
      return `${ch}: timed out`;
    case 'ERR_ROLE_TAKEN':
      return `${ch}: the role is held by another live handle`;
    case 'ERR_TOO_MANY_PRODUCERS':
      return `${ch} has no free producer slot (all are held by live processes)`;
    case 'ERR_PEER_GONE':
      return `${ch}: the consumer died while the ring is full; nothing more can be delivered until a new consumer opens it`;
    case 'ERR_ENDED':
      return `${ch} has ended (end() was called); no more messages can be sent or received`;
    case 'ERR_MESSAGE_TOO_LARGE':
      return `${ch}: message too large`;
    case 'ERR_CLOSED':
      return `${ch} is closed (this handle was closed; open a new one)`;
    default:
      return `${ch}: invalid argument`;
  }
}

export function invalidArg(message: string): ShmChanError {
  return new ShmChanError('ERR_INVALID_ARG', message);
}

/** Node's own AbortError, as rejected by its promise APIs. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}
