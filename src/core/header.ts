// What a channel's header says about it, read once when a handle opens it and
// checked: another process may change the header at any time, so a handle never
// reads these fields again. Also the codec ids the header stores, and which
// codec an opener ends up with.
import { native } from './binding';
import * as L from './layout';
import { makeCodec, type Codec, type CodecKind, type CodecOption } from './codec';
import { corrupt, incompatible, invalidArg } from './errors';
import type { Backend, Mode, Overflow } from './options';

/** The header fields a handle relies on. */
export interface HeaderFields {
  mode: Mode;
  backend: Backend;
  capacity: number;
  maxMessageSize: number;
  /** The codec id (CODEC_*). */
  codec: number;
  /** 'broadcast': what producers do when the slowest subscriber is a lap behind. */
  overflow: Overflow;
}

const modeOfId: Readonly<Record<number, Mode>> = {
  [L.MODE_SPSC]: 'spsc',
  [L.MODE_MPSC]: 'mpsc',
  [L.MODE_MPMC]: 'mpmc',
  [L.MODE_BROADCAST]: 'broadcast',
};

/** The mode a validated header's id names. */
export function modeOf(id: number): Mode {
  return modeOfId[id] ?? 'spsc';
}

/** What the header stores for a mode. */
export function modeId(mode: Mode): number {
  return mode === 'mpsc' ? L.MODE_MPSC : mode === 'mpmc' ? L.MODE_MPMC : mode === 'broadcast' ? L.MODE_BROADCAST : L.MODE_SPSC;
}

export function readHeader(channel: string, buffer: ArrayBuffer): HeaderFields {
  const header = new Uint32Array(buffer, 0, L.HEADER_SIZE >> 2);
  // The mapping is exactly header + ring: the native side checked the header's
  // capacity when it mapped the segment, and sized the mapping by it.
  const capacity = buffer.byteLength - L.HEADER_SIZE;
  const mode = header[L.OFF_MODE >> 2];
  const maxMessageSize = header[L.OFF_MAX_MESSAGE >> 2];
  const codec = header[L.OFF_CODEC >> 2];
  const backend = header[L.OFF_BACKEND >> 2] === L.BACKEND_SYSV ? 'sysv' : 'posix';
  const overflow = header[L.OFF_OVERFLOW >> 2];
  if (
    modeOfId[mode] === undefined ||
    overflow > L.OVERFLOW_OVERWRITE ||
    maxMessageSize < 1 ||
    maxMessageSize > native.maxMessageLimit(capacity) ||
    codec > L.CODEC_MSGPACK_RECORDS
  )
    throw corrupt(channel, 'its header changed while it was being opened');
  return { mode: modeOfId[mode], backend, capacity, maxMessageSize, codec, overflow: overflow === L.OVERFLOW_OVERWRITE ? 'overwrite' : 'block' };
}

// ---- codec ids ----

/** The codec stored under each id; records are msgpack over shared structures. */
const codecOfId: Readonly<Record<number, CodecKind>> = {
  [L.CODEC_RAW]: 'raw',
  [L.CODEC_MSGPACK]: 'msgpack',
  [L.CODEC_CUSTOM]: 'custom',
  [L.CODEC_MSGPACK_RECORDS]: 'msgpack',
};

const idOfCodec: Readonly<Record<CodecKind, number>> = { raw: L.CODEC_RAW, msgpack: L.CODEC_MSGPACK, custom: L.CODEC_CUSTOM };

/** What the header stores for a codec. */
export function codecId(kind: CodecKind, records: boolean): number {
  return records ? L.CODEC_MSGPACK_RECORDS : idOfCodec[kind];
}

/** The codec a header's id names; an unknown id reads as a custom codec. */
export function codecKindOf(id: number): CodecKind {
  return codecOfId[id] ?? 'custom';
}

/** The codec an opener uses: the channel's own unless it passed one, which must match. */
export function negotiateCodec<T>(channel: string, stored: number, option: CodecOption<T> | undefined): Codec<T> {
  const storedKind = codecKindOf(stored);
  if (option === undefined) {
    if (storedKind === 'custom')
      throw invalidArg(`channel '${channel}' was created with a custom codec: pass the same { encode, decode } as options.codec`);
    return makeCodec<T>(storedKind);
  }
  const codec = makeCodec(option);
  if (stored === L.CODEC_MSGPACK_RECORDS && codec.kind === 'custom')
    throw incompatible(
      `channel '${channel}' carries msgpackr records (created with { records: true }); a custom codec cannot read them (leave codec out)`,
    );
  if (codec.kind !== 'custom' && codec.kind !== storedKind)
    throw incompatible(`channel '${channel}' was created with codec '${storedKind}', not '${codec.kind}' (leave codec out to use the channel's own)`);
  return codec;
}
