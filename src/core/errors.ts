// Every error a user sees is made here: from an errno (what the native core and
// the binding report), from a failure inside the data path, or from a condition
// the JavaScript side detects. One table maps errno names to codes, and the
// messages say what to do about each.
import type { NativeError } from './binding';
import * as L from './layout';

/** What a ShmChanError's `code` can be: tell errors apart by it, never by their message. */
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
  | 'ERR_TOO_MANY_CONSUMERS'
  | 'ERR_LAGGED'
  | 'ERR_PEER_GONE'
  | 'ERR_REMOTE'
  | 'ERR_CORRUPT'
  | 'ERR_INCOMPATIBLE'
  | 'ERR_ENCODE'
  | 'ERR_DECODE'
  | 'ERR_SYSTEM';

/**
 * Every error shmchan throws about a channel or an argument (besides Node's AbortError
 * for an aborted signal). The message says what happened and what to do about it.
 */
export class ShmChanError extends Error {
  /** What went wrong, e.g. 'ERR_TIMEOUT', 'ERR_CHANNEL_NOT_FOUND' (see ErrorCode). */
  readonly code: ErrorCode;
  /** For errors from a system call: the errno name, e.g. 'ENOSPC'. */
  readonly errno?: string;
  /** For errors from a system call: the call, e.g. 'ftruncate'. */
  readonly syscall?: string;
  /** ERR_LAGGED: how many messages this subscriber missed. */
  readonly lost?: number;
  /** ERR_REMOTE: the error a service's handler threw or failed with. */
  readonly remote?: RemoteError;

  constructor(
    code: ErrorCode,
    message: string,
    details: { errno?: string; syscall?: string; cause?: unknown; lost?: number; remote?: RemoteError } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ShmChanError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.lost !== undefined) this.lost = details.lost;
    if (details.remote !== undefined) this.remote = details.remote;
  }
}

/** An error as it crosses from a service's worker to a client. */
export interface RemoteError {
  /** The remote error's name, e.g. 'TypeError'. */
  name: string;
  /** The remote error's message. */
  message: string;
  /** The remote error's code, when it had a string one. */
  code?: string;
}

// ---- errno: the one mapping ----

/** What the failed call was doing, for the message. */
export interface ErrorContext {
  channel: string;
  syscall?: string;
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

/** Calls whose failure means a bad option rather than a system problem. */
const codeOfSyscall: Record<string, ErrorCode> = {
  ftok: 'ERR_INVALID_ARG',
};

/**
 * The one mapping from an errno name (what the binding reports, or what the
 * JavaScript side chooses for a condition it detects) to a ShmChanError. Callers
 * that know better (a role, a size) build their own message and pass it as `message`.
 */
export function errorFromErrno(name: string, context: ErrorContext, message?: string): ShmChanError {
  const ch = `channel '${context.channel}'`;
  const byCall = context.syscall === undefined ? undefined : codeOfSyscall[context.syscall];
  if (byCall !== undefined)
    return new ShmChanError(byCall, message ?? `${ch}: ${context.syscall} failed with ${name}`, {
      errno: name,
      syscall: context.syscall,
    });
  // EINVAL from a system call is the kernel refusing (a System V limit, say), not
  // a bad argument: shmchan checks its arguments before any call.
  const code = name === 'EINVAL' && context.syscall !== undefined ? undefined : codeOfErrno[name];
  if (code !== undefined) return new ShmChanError(code, message ?? defaultMessage(code, ch), { errno: name });
  const call = context.syscall ?? 'a system call';
  return new ShmChanError('ERR_SYSTEM', message ?? systemMessage(name, ch, call), {
    errno: name,
    syscall: context.syscall,
  });
}

/** The errno name of a failure the binding threw (a NativeError), or undefined
 * for anything else. */
export function nativeCode(error: unknown): string | undefined {
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
  return typeof code === 'string' && typeof errno === 'number' ? code : undefined;
}

/** A failure the binding threw as a ShmChanError; anything else is passed on as it is. */
export function fromNative(error: unknown, context: ErrorContext, message?: string): unknown {
  const code = nativeCode(error);
  if (code === undefined) return error;
  return errorFromErrno(code, { ...context, syscall: context.syscall ?? (error as NativeError).syscall }, message);
}

function systemMessage(name: string, ch: string, call: string): string {
  if (call === 'shmget' && name === 'EINVAL')
    return `${ch}: shmget failed with EINVAL: a System V segment of this capacity is over the kernel's limit for one segment (sysctl kernel.shmmax); raise it, or use a smaller capacity or the POSIX backend`;
  if (call === 'semget' && name === 'EINVAL')
    return `${ch}: semget failed with EINVAL: the kernel allows fewer semaphores per set than a System V channel needs (the first field of sysctl kernel.sem, SEMMSL, must be at least ${L.SYSV_NSEMS}); raise it, or use the POSIX backend`;
  if (call === 'shm_open' && name === 'EISDIR')
    return `${ch}: /dev/shm has a directory under this name, not a channel (shm_open failed with EISDIR); remove the directory or use another name`;
  if (call === 'pthread_create')
    return `${ch}: no thread could be started to wait on (${call} failed with ${name}: the process or its user is at its thread limit, see ulimit -u, or out of memory); nothing was sent or received, and the channel can still be used`;
  if (name === 'EIDRM')
    return `${ch} was removed while in use: its System V semaphore set is gone (ipcrm, or Channel.unlink), so nothing can wake a waiting call (${call} failed with EIDRM); close this handle and create the channel again`;
  return `${ch}: ${call} failed with ${name}`;
}

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

// ---- failures inside the data path ----
// Thrown by the ring code, which does not know the channel's name; dataPathError
// turns each into the ShmChanError a user sees.

/** The shared memory holds something the protocol never writes. */
export class CorruptRing extends Error {}

/** An encoded message longer than the channel's maxMessageSize: nothing was sent. */
export class MessageTooLarge extends Error {
  constructor(
    readonly length: number,
    readonly max: number,
  ) {
    super('message too large');
  }
}

/** Thrown by a decoder that cannot take a message (a caller's buffer too small for
 * it): the reader leaves the message unread, to be read again. */
export class LeaveUnread extends Error {
  constructor(
    readonly payload: number,
    readonly room: number,
  ) {
    super('message left unread');
  }
}

/** A message that failed to decode; it was consumed. */
export class DecodeFailure extends Error {
  constructor(readonly error: unknown) {
    super('decode failed');
  }
}

/** Thrown by a producer whose claim came after end(): nothing was sent. */
export class StreamEnded extends Error {}

/** Thrown by a broadcast subscriber that producers overtook ('overwrite'). */
export class Lagged extends Error {
  constructor(readonly lost: number) {
    super('lagged');
  }
}

/** A failure inside the data path as a ShmChanError naming the channel. Anything
 * not listed came from the codec's encode: ERR_ENCODE. */
export function dataPathError(error: unknown, channel: string, maxMessageSize: number): ShmChanError {
  if (error instanceof ShmChanError) return error;
  if (error instanceof StreamEnded) return errorFromErrno('ESHUTDOWN', { channel });
  if (error instanceof Lagged)
    return new ShmChanError(
      'ERR_LAGGED',
      `channel '${channel}': this subscriber fell a full lap behind and ${error.lost} messages were overwritten before it read them; it goes on from the oldest message still in the ring (read faster, or create the channel with a larger capacity)`,
      { lost: error.lost },
    );
  if (error instanceof CorruptRing)
    return new ShmChanError('ERR_CORRUPT', `channel '${channel}' is corrupt (${error.message}); remove and recreate it`);
  if (error instanceof MessageTooLarge)
    return new ShmChanError(
      'ERR_MESSAGE_TOO_LARGE',
      `channel '${channel}': the message encodes to ${error.length} bytes, more than maxMessageSize ${error.max} (create the channel with a larger maxMessageSize or capacity)`,
    );
  if (error instanceof LeaveUnread)
    return new ShmChanError(
      'ERR_MESSAGE_TOO_LARGE',
      `channel '${channel}': the next message has ${error.payload} bytes, more than the ${error.room} of the buffer to receive into; it stays in the channel (a buffer of maxMessageSize, ${maxMessageSize} bytes, always fits)`,
    );
  if (error instanceof DecodeFailure)
    return new ShmChanError(
      'ERR_DECODE',
      `channel '${channel}': a message could not be decoded and was skipped (${String((error.error as Error)?.message ?? error.error)}); do both sides use the same codec?`,
      { cause: error.error },
    );
  return new ShmChanError(
    'ERR_ENCODE',
    `channel '${channel}': the value cannot be encoded (${String((error as Error)?.message ?? error)}); nothing was sent`,
    { cause: error },
  );
}

// ---- conditions the JavaScript side detects ----

/** A value as an error message shows it. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'string') return `the string ${quoted(value)}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return `${typeof value} ${String(value)}`;
}

/** Text from shared memory as a message may quote it: anything but printable
 * ASCII escaped (\xNN, \u{N}), so a forged header cannot reach a terminal with
 * control sequences. Channel names are printable ASCII, so theirs show as they are. */
export function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]|\\/gu, (c) => {
    const point = c.codePointAt(0)!;
    if (c === '\\') return '\\\\';
    return point < 0x100 ? `\\x${point.toString(16).padStart(2, '0')}` : `\\u{${point.toString(16)}}`;
  });
}

export function invalidArg(message: string): ShmChanError {
  return new ShmChanError('ERR_INVALID_ARG', message);
}

/** A string as a message quotes it: in JSON quotes, cut after 40 characters. */
function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text);
}

export function invalidName(name: unknown, nameMax: number): ShmChanError {
  const rule = `use 1 to ${nameMax} of A-Z a-z 0-9 . _ - (optionally after one leading '/')`;
  if (typeof name !== 'string') return new ShmChanError('ERR_INVALID_NAME', `a channel name must be a string, got ${describe(name)}: ${rule}`);
  return new ShmChanError('ERR_INVALID_NAME', `invalid channel name ${quoted(name)}: ${rule}`);
}

/** The channel is not what this use of it needs (a codec, a mode, records). */
export function incompatible(message: string): ShmChanError {
  return new ShmChanError('ERR_INCOMPATIBLE', message);
}

export function timedOut(message: string): ShmChanError {
  return new ShmChanError('ERR_TIMEOUT', message);
}

/** A request a service's handler failed: the message is the remote error's own. */
export function remoteError(remote: RemoteError): ShmChanError {
  return new ShmChanError('ERR_REMOTE', remote.message, { remote });
}

export function peerGone(message: string): ShmChanError {
  return new ShmChanError('ERR_PEER_GONE', message);
}

/** create found a stale channel under the name that still holds unread messages. */
export function staleChannelExists(channel: string, unread: number): ShmChanError {
  const messages = unread === 1 ? '1 unread message' : `${unread} unread messages`;
  return new ShmChanError(
    'ERR_CHANNEL_EXISTS',
    `channel '${channel}' already exists and is stale (no live process has it open), with ${messages} in it: open it and read them (Channel.open), pass { replaceStale: true } to replace it, or remove it with 'shmchan rm ${channel}'`,
    { errno: 'EEXIST' },
  );
}

/** Service.create found the service already served: more workers come with Service.open. */
export function serviceExists(service: string, workers: number): ShmChanError {
  return new ShmChanError(
    'ERR_CHANNEL_EXISTS',
    `service '${service}' already exists and has ${workers} live worker${workers === 1 ? '' : 's'}: add a worker with Service.open('${service}')`,
    { errno: 'EEXIST' },
  );
}

export function notFound(message: string): ShmChanError {
  return new ShmChanError('ERR_CHANNEL_NOT_FOUND', message);
}

/** Another process changed or destroyed the header: `detail` says how. */
export function corrupt(channel: string, detail: string): ShmChanError {
  return new ShmChanError('ERR_CORRUPT', `channel '${channel}' is corrupt: ${detail}; remove and recreate it`);
}

export function roleTaken(channel: string, role: string, who: string, rule: string): ShmChanError {
  return new ShmChanError('ERR_ROLE_TAKEN', `channel '${channel}' already has a ${role} (${who}); ${rule}: close that handle first`, {
    errno: 'EBUSY',
  });
}

export function tooManyConsumers(channel: string, max: number): ShmChanError {
  return new ShmChanError('ERR_TOO_MANY_CONSUMERS', `channel '${channel}' already has ${max} live consumers, its limit; close one first (or create the channel with a larger maxConsumers)`, {
    errno: 'EUSERS',
  });
}

export function tooManyProducers(channel: string, max: number): ShmChanError {
  return new ShmChanError('ERR_TOO_MANY_PRODUCERS', `channel '${channel}' already has ${max} live producers; close one first`, {
    errno: 'EUSERS',
  });
}

/** Node's own AbortError, as rejected by its promise APIs. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}
