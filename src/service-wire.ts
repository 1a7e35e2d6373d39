// What requests and replies look like on a service's channels, written once for
// Service and Client: plain MessagePack arrays, so a C peer can take part (see
// docs/services.md). A request is [client, id, value?, deadline?] on the
// service's 'mpmc' queue, `client` numbering the client's own 'mpsc' reply
// channel <service>.reply.<client>; a reply is [id, 0, value?] or [id, 1,
// { name, message, code? }] there. A missing value is undefined.
import { readdirSync } from 'node:fs';
import type { Channel } from './core/channel';
import { native } from './core/binding';
import type { CodecOption } from './core/codec';
import { describe, invalidArg, invalidName, type RemoteError } from './core/errors';
import * as L from './core/layout';
import { normalizeName, type Backend } from './core/options';
import { removeStale } from './core/segment';
import { listSysv } from './list';

/**
 * Lets the microtasks queued so far run: the continuations that answer or send
 * requests. A receive that finds nothing spins before it sleeps, synchronously;
 * spinning first would hold back the very replies and requests it waits for.
 */
export async function letMicrotasksRun(): Promise<void> {
  for (let hop = 0; hop < 4; hop++) await null;
}

export const REPLY_OK = 0;
export const REPLY_FAILED = 1;

/** Room a client's reply channel name needs after the service's name (a client
 * number takes at most 10 digits; the rest is kept for later suffixes). */
const REPLY_SUFFIX_MAX = '.reply.'.length + 24;
/** The longest service name: its clients' reply channels must be valid names too. */
export const SERVICE_NAME_MAX = L.NAME_MAX - REPLY_SUFFIX_MAX;

/** A service's name as stored, checked to leave room for its reply channels' names. */
export function serviceName(name: unknown): string {
  const service = normalizeName(name);
  if (service.length > SERVICE_NAME_MAX) throw invalidName(`${describe(name)} (a service name has at most ${SERVICE_NAME_MAX} characters, so that its clients' reply channels have valid names)`, SERVICE_NAME_MAX);
  return service;
}

/** Every reply channel of a service starts with this; a worker writes to no other channel. */
export function replyPrefix(service: string): string {
  return `${service}.reply.`;
}

/** The largest client number: a request carries it as a MessagePack uint32. */
const CLIENT_MAX = 2 ** 32 - 1;

/** A client number to try for a new client: random, so that clients of many
 * processes rarely pick the same (a taken one fails to create, and another is tried). */
export function randomClientNumber(): number {
  return Math.floor(Math.random() * (CLIENT_MAX + 1));
}

/** The reply channel of client number `client`. A request names its client by this
 * number rather than by the channel's name: a string per request would cost more to
 * write, read and check than the rest of a small request's envelope. */
export function replyChannelName(prefix: string, client: number): string {
  return `${prefix}${client}`;
}

export interface Envelope {
  /** The client's number: its reply channel is replyChannelName(prefix, client). */
  client: number;
  id: number;
  value: unknown;
  /** When the client gives up on the request, in monotonicMs(); undefined: it waits as long as it takes. */
  deadline: number | undefined;
}

/**
 * Now on CLOCK_MONOTONIC, in whole milliseconds: the clock of a request's deadline.
 * Every process on the host reads the same one (a C peer with clock_gettime), and
 * it does not jump when the wall clock is set.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/** A request as decoded from the queue, or undefined for anything else (a bad or hostile message). */
export function parseRequest(message: unknown): Envelope | undefined {
  if (!Array.isArray(message) || message.length < 2 || message.length > 4) return undefined;
  const [client, id, value, deadline] = message as unknown[];
  if (!isCount(client) || client > CLIENT_MAX) return undefined;
  if (!isCount(id) || (message.length === 4 && !isCount(deadline))) return undefined;
  return { client, id, value, deadline: deadline as number | undefined };
}

/** A request; one with a deadline carries its value even when that is undefined (msgpackr's undefined). */
export function requestMessage(client: number, id: number, wireValue: unknown, deadline: number | undefined): unknown[] {
  if (deadline !== undefined) return [client, id, wireValue, deadline];
  return wireValue === undefined ? [client, id] : [client, id, wireValue];
}

export function replyMessage(id: number, wireValue: unknown): unknown[] {
  return wireValue === undefined ? [id, REPLY_OK] : [id, REPLY_OK, wireValue];
}

export function failureMessage(id: number, error: unknown): unknown[] {
  return [id, REPLY_FAILED, remoteOf(error)];
}

/** What a client learns of an error: its name, message and (string or number) code. */
export function remoteOf(error: unknown): RemoteError {
  const { name, message, code } = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const remote: RemoteError = {
    name: typeof name === 'string' ? name : 'Error',
    message: typeof message === 'string' ? message : typeof error === 'string' ? error : String(describe(error)),
  };
  if (typeof code === 'string' || typeof code === 'number') remote.code = String(code);
  return remote;
}

/** A reply as decoded from a reply channel, or undefined for anything else. */
export function parseReply(message: unknown): { id: number; ok: boolean; payload: unknown } | undefined {
  if (!Array.isArray(message) || message.length < 2 || message.length > 3) return undefined;
  const [id, status, payload] = message as unknown[];
  if (!Number.isSafeInteger(id) || (status !== REPLY_OK && status !== REPLY_FAILED)) return undefined;
  return { id: id as number, ok: status === REPLY_OK, payload };
}

/** The error a failure reply carries, its fields checked (a hostile peer may send anything). */
export function parseRemote(payload: unknown): RemoteError {
  const { name, message, code } = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
  const remote: RemoteError = {
    name: typeof name === 'string' ? name : 'Error',
    message: typeof message === 'string' ? message : 'the service failed the request without a message',
  };
  if (typeof code === 'string') remote.code = code;
  return remote;
}

/** How values of Req and Res travel inside the envelope: as themselves (msgpack),
 * or as MessagePack bin (raw bytes, and the bytes of a custom codec). */
export interface ValueCodec {
  toWire(value: unknown): unknown;
  fromWire(wire: unknown): unknown;
}

export function valueCodec(option: CodecOption<unknown> | undefined, what: string): ValueCodec {
  if (option === undefined || option === 'msgpack') return { toWire: (value) => value, fromWire: (wire) => wire };
  if (option === 'raw')
    return {
      toWire: (value) => {
        if (!(value instanceof Uint8Array)) throw invalidArg(`${what} uses the 'raw' codec: values are Uint8Array or Buffer, got ${describe(value)}`);
        return value;
      },
      fromWire: (wire) => wire,
    };
  if (typeof option === 'object' && option !== null && typeof option.encode === 'function' && typeof option.decode === 'function')
    return {
      toWire: (value) => (value === undefined ? undefined : option.encode(value)),
      fromWire: (wire) => (wire instanceof Uint8Array ? option.decode(wire) : wire),
    };
  throw invalidArg(`${what}: codec must be 'msgpack', 'raw' or { encode, decode }, got ${describe(option)}`);
}

/** Checks that an options object names only known options (a typo must not be ignored). */
export function knownOptions(options: unknown, known: readonly string[], what: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw invalidArg(`${what}: options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options))
    if (!known.includes(key)) throw invalidArg(`${what}: unknown option '${key}' (known: ${known.join(', ')})`);
  return options as Record<string, unknown>;
}

/**
 * Closes a handle on a service's queue, and removes the queue if no other handle
 * has it open: the last of the workers and clients to close removes it. The
 * removal is made under the lock that keeps openers out, so a queue someone
 * opens meanwhile stays; requests left in it have nobody left to answer or await them.
 */
export function closeQueue(queue: Channel<unknown>): void {
  const place = { channel: queue.name, key: queue.key };
  queue.close();
  try {
    removeStale(place, true);
  } catch {
    // removed meanwhile: nothing to do
  }
}

/**
 * Removes a service's reply channels that no live process has open: those of
 * clients that died. Each is removed under the lock that keeps openers out, so a
 * channel in use, or one being created, stays. `skip` names channels known alive.
 */
export function removeStaleReplyChannels(service: string, backend: Backend, skip: ReadonlySet<string> = new Set()): void {
  const prefix = replyPrefix(service);
  let names: { channel: string; key: number | undefined }[];
  if (backend === 'posix') {
    try {
      names = readdirSync('/dev/shm')
        .filter((file) => file.startsWith(prefix))
        .map((channel) => ({ channel, key: undefined }));
    } catch {
      return;
    }
  } else {
    // a dead client's segment is attached by nobody, except a worker that answered
    // it, which forgets it on its own sweep
    names = listSysv(true)
      .filter((d) => d.stale && d.name.startsWith(prefix))
      .map((d) => ({ channel: d.name, key: d.key }));
  }
  for (const place of names) {
    if (skip.has(place.channel) || !native.validName(place.channel)) continue;
    try {
      removeStale(place, true);
    } catch {
      // removed or replaced meanwhile: nothing to do
    }
  }
}
