// The options a user passes, checked once at the door: every check says what it
// expected and what it got, and nothing is created or claimed before they pass.
import { native } from './binding';
import * as L from './layout';
import { makeCodec, type Codec, type CodecOption } from './codec';
import { describe, invalidArg, invalidName } from './errors';
import { rejectKey, sysvKey, type SysvKey } from './sysv';

export type Backend = 'posix' | 'sysv';
export type Mode = 'spsc' | 'mpsc' | 'mpmc' | 'broadcast';
/** 'broadcast': what producers do when the slowest subscriber is a full lap behind. */
export type Overflow = 'block' | 'overwrite';
/** 'broadcast': where a new subscriber starts. */
export type From = 'latest' | 'oldest';

export interface CreateOptions<T = unknown> {
  /** Ring bytes: rounded up to a power of two, at least 4 KiB, at most 1 GiB. Default 1 MiB. */
  capacity?: number;
  mode?: Mode;
  backend?: Backend;
  /** System V only: the key, as a number or the { path, projectId } given to ftok.
   * Default: derived from the name (see the README). */
  key?: SysvKey;
  /** File mode bits of the segment. Default 0o600. */
  permissions?: number;
  codec?: CodecOption<T>;
  /** Largest encoded message accepted. Default a quarter of the capacity. */
  maxMessageSize?: number;
  /** Remove the channel's name when this handle closes. Default true for the creator. */
  unlinkOnClose?: boolean;
  /** Replace a stale channel under the name (no live process has it open) even
   * when it holds unread messages; a stale one without any is always replaced.
   * Default false. */
  replaceStale?: boolean;
  /** How long a waiting call spins before it sleeps, in microseconds. Default 50. */
  spinMicros?: number;
  /** msgpack only: encode objects as msgpackr records whose key lists are kept once,
   * in the segment, instead of in every message. Faster and smaller, but the bytes
   * are no longer plain MessagePack (see the README). Default false. */
  records?: boolean;
  /** 'broadcast' only: how many subscribers at once, 1..64. Default 16. */
  maxConsumers?: number;
  /** 'broadcast' only: 'block' (default) makes producers wait for the slowest live
   * subscriber; 'overwrite' never waits, and a lapped subscriber gets ERR_LAGGED. */
  overflow?: Overflow;
}

export interface OpenOptions<T = unknown> {
  backend?: Backend;
  /** System V only: the key the channel was created with, if it was given one. */
  key?: SysvKey;
  codec?: CodecOption<T>;
  /** Milliseconds to wait for a creator that is still initialising the channel (default
   * 1000). Given explicitly, it also waits that long for the channel to appear.
   * Channel.connect waits as long as it takes unless it is given. */
  timeout?: number;
  unlinkOnClose?: boolean;
  spinMicros?: number;
  /** 'broadcast' only: 'latest' (default) receives what is sent after the first
   * receiving call; 'oldest' also what is still in the ring. */
  from?: From;
}

export interface WaitOptions {
  timeout?: number;
  signal?: AbortSignal;
}

const DEFAULT_CAPACITY = 1 << 20;
const DEFAULT_OPEN_TIMEOUT = 1000;
const DEFAULT_SPIN_MICROS = 50;
const MAX_SPIN_MICROS = 1_000_000;

/** A channel name as stored: without the leading '/'. */
export function normalizeName(name: unknown): string {
  // a NUL would end the name early in C: 'a\0b' must not become channel 'a'
  if (typeof name !== 'string' || name.includes('\0') || !native.validName(name)) throw invalidName(describe(name), L.NAME_MAX);
  return name.startsWith('/') ? name.slice(1) : name;
}

/** An options argument: undefined, or an object whose every option is one of
 * `known` (a misspelt option must not be ignored silently). */
export function optionsObject(options: unknown, known: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArg(`options must be an object, got ${describe(options)}`);
  for (const name of Object.keys(options))
    if (!known.includes(name)) throw invalidArg(`unknown option '${name}' (the options here are ${known.join(', ')})`);
  return options as Record<string, unknown>;
}

const placeOptions = ['backend', 'key'] as const;
/** The option names of each call, for optionsObject. */
export const optionNames = {
  create: [
    ...placeOptions,
    'capacity',
    'mode',
    'permissions',
    'codec',
    'maxMessageSize',
    'unlinkOnClose',
    'spinMicros',
    'records',
    'replaceStale',
    'maxConsumers',
    'overflow',
    'from',
  ],
  open: [...placeOptions, 'codec', 'timeout', 'unlinkOnClose', 'spinMicros', 'from'],
  connect: [...placeOptions, 'codec', 'timeout', 'unlinkOnClose', 'spinMicros', 'signal', 'from'],
  unlink: placeOptions,
  wait: ['timeout', 'signal'],
} as const;

export function integerOption(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw invalidArg(`${key} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  return value;
}

export function booleanOption(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArg(`${key} must be a boolean, got ${describe(value)}`);
  return value;
}

/** A `timeout` option: milliseconds >= 0 (Infinity allowed), or undefined. */
export function timeoutOption(options: Record<string, unknown>): number | undefined {
  const timeout = options.timeout;
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0)
    throw invalidArg(`timeout must be a number of milliseconds >= 0, got ${describe(timeout)}`);
  return timeout;
}

export function signalOption(options: Record<string, unknown>): AbortSignal | undefined {
  const signal = options.signal;
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArg(`signal must be an AbortSignal, got ${describe(signal)}`);
  return signal;
}

/** The options of a waiting call: undefined or an object (a bare number there
 * would otherwise be ignored, and the call would wait for ever). */
export function waitOptions(options: unknown): { timeout: number | undefined; signal: AbortSignal | undefined } {
  const o = optionsObject(options, optionNames.wait);
  return { timeout: timeoutOption(o), signal: signalOption(o) };
}

function backendOption(options: Record<string, unknown>): Backend {
  const backend = options.backend;
  if (backend === undefined || backend === 'posix') return 'posix';
  if (backend === 'sysv') return 'sysv';
  throw invalidArg(`backend must be 'posix' or 'sysv', got ${describe(backend)}`);
}

/** The System V key to use, or undefined for POSIX (where a key is refused). */
function keyOption(options: Record<string, unknown>, channel: string): number | undefined {
  if (backendOption(options) === 'sysv') return sysvKey(options.key, channel);
  rejectKey(options.key);
  return undefined;
}

function spinOption(options: Record<string, unknown>): number {
  return integerOption(options, 'spinMicros', DEFAULT_SPIN_MICROS, 0, MAX_SPIN_MICROS);
}

/** Where a channel lives: its name, and its System V key (undefined: POSIX). */
export interface Place {
  channel: string;
  key: number | undefined;
}

/** The name, the options object, and the place they name. */
function placeOf(name: unknown, options: unknown, known: readonly string[]): { place: Place; o: Record<string, unknown> } {
  const channel = normalizeName(name);
  const o = optionsObject(options, known);
  return { place: { channel, key: keyOption(o, channel) }, o };
}

/** Channel.unlink's arguments. */
export function unlinkSettings(name: unknown, options: unknown): Place {
  return placeOf(name, options, optionNames.unlink).place;
}

export interface CreateSettings<T> extends Place {
  mode: Mode;
  capacity: number;
  maxMessageSize: number;
  permissions: number;
  spinMicros: number;
  unlinkOnClose: boolean;
  replaceStale: boolean;
  codec: Codec<T>;
  records: boolean;
  maxConsumers: number;
  overflow: Overflow;
  from: From;
}

const MODES: readonly Mode[] = ['spsc', 'mpsc', 'mpmc', 'broadcast'];
const DEFAULT_MAX_CONSUMERS = 16;

/** One of `choices`, or the first when the option is left out. */
function choiceOption<C extends string>(options: Record<string, unknown>, key: string, choices: readonly C[]): C {
  const value = options[key] === undefined ? choices[0] : options[key];
  if (!choices.includes(value as C)) throw invalidArg(`${key} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got ${describe(value)}`);
  return value as C;
}

export function createSettings<T>(name: unknown, options: unknown): CreateSettings<T> {
  const { place, o } = placeOf(name, options, optionNames.create);
  const mode = choiceOption(o, 'mode', MODES);
  if (mode !== 'broadcast' && (o.maxConsumers !== undefined || o.overflow !== undefined || o.from !== undefined))
    throw invalidArg(`maxConsumers, overflow and from are options of mode 'broadcast', not '${mode}'`);
  const maxConsumers = integerOption(o, 'maxConsumers', DEFAULT_MAX_CONSUMERS, 1, L.MAX_CONSUMERS);
  const overflow = choiceOption<Overflow>(o, 'overflow', ['block', 'overwrite']);
  const from = choiceOption<From>(o, 'from', ['latest', 'oldest']);
  const capacity = roundCapacity(integerOption(o, 'capacity', DEFAULT_CAPACITY, 1, L.MAX_CAPACITY));
  const limit = native.maxMessageLimit(capacity);
  const maxMessageSize = integerOption(o, 'maxMessageSize', Math.min(limit, capacity / 4), 1, limit);
  const permissions = integerOption(o, 'permissions', 0o600, 0, 0o777);
  const spinMicros = spinOption(o);
  const unlinkOnClose = booleanOption(o, 'unlinkOnClose', true);
  const replaceStale = booleanOption(o, 'replaceStale', false);
  const codec = makeCodec(o.codec as CodecOption<T> | undefined);
  const records = booleanOption(o, 'records', false);
  if (records && codec.kind !== 'msgpack')
    throw invalidArg(`records: true needs the 'msgpack' codec, not '${codec.kind}' (records are msgpackr's)`);
  return { ...place, mode, capacity, maxMessageSize, permissions, spinMicros, unlinkOnClose, replaceStale, codec, records, maxConsumers, overflow, from };
}

export interface OpenSettings<T> extends Place {
  /** The timeout option as given: undefined when it was left out. */
  timeout: number | undefined;
  spinMicros: number;
  unlinkOnClose: boolean;
  codec: CodecOption<T> | undefined;
  from: From;
}

export function openSettings<T>(name: unknown, options: unknown, known: readonly string[] = optionNames.open): OpenSettings<T> {
  const { place, o } = placeOf(name, options, known);
  const timeout = timeoutOption(o);
  const spinMicros = spinOption(o);
  const unlinkOnClose = booleanOption(o, 'unlinkOnClose', false);
  const codec = o.codec as CodecOption<T> | undefined;
  if (codec !== undefined) makeCodec(codec); // reject a bad codec before touching anything
  const from = choiceOption<From>(o, 'from', ['latest', 'oldest']);
  return { ...place, timeout, spinMicros, unlinkOnClose, codec, from };
}

/** Channel.connect's: open's, and a signal. */
export function connectSettings<T>(name: unknown, options: unknown): OpenSettings<T> & { signal: AbortSignal | undefined } {
  // openSettings has checked the object and its option names, connect's included
  const settings = openSettings<T>(name, options, optionNames.connect);
  return { ...settings, signal: signalOption((options ?? {}) as Record<string, unknown>) };
}

/** How long Channel.open waits for a creator that is still initialising the channel. */
export function openTimeout(settings: OpenSettings<unknown>): number {
  return settings.timeout ?? DEFAULT_OPEN_TIMEOUT;
}

function roundCapacity(requested: number): number {
  let capacity = L.MIN_CAPACITY;
  while (capacity < requested) capacity *= 2;
  return capacity;
}
