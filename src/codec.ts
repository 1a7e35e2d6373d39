// How values become bytes and back. A codec may encode straight into the ring
// (encodeInto) and always decodes straight out of it, so the common message
// is copied once, by the encoder.
import { Packr, Unpackr } from 'msgpackr';
import { invalidArg } from './errors';

export interface CustomCodec<T> {
  encode(value: T): Uint8Array;
  /** Gets a Buffer of its own, which it may keep. */
  decode(bytes: Uint8Array): T;
}

export type CodecOption<T> = 'msgpack' | 'raw' | CustomCodec<T>;
export type CodecKind = 'msgpack' | 'raw' | 'custom';

export interface Codec<T> {
  readonly kind: CodecKind;
  /** The encoded bytes; they may live in a scratch buffer until the next encode. */
  encode(value: T): Uint8Array;
  /**
   * Encodes into target at offset when it fits before target's end; otherwise
   * anywhere. The caller compares the result's position with the one it asked for.
   * May leave bytes in target past offset either way.
   */
  encodeInto?(value: T, target: Buffer, offset: number): Uint8Array;
  /** Throws ERR_INVALID_ARG for a value this codec never accepts, before anything is claimed or written. */
  check?(value: T): void;
  /** Decodes target[start, end); the bytes are only valid during the call. */
  decode(target: Buffer, start: number, end: number): T;
}

/**
 * msgpackr keeps its output buffer in module state shared by every Packr in the
 * process. To encode into the ring we point that state at the ring for one call,
 * then park it on a buffer that is full, so the next pack anywhere (ours or the
 * application's) allocates a fresh buffer instead of writing into the ring or
 * over an earlier result.
 */
const parking = Buffer.alloc(8192);
const minInPlaceRoom = 0x800 + 16; // msgpackr starts a new buffer when less than 2 KiB is left

class MsgpackCodec implements Codec<unknown> {
  readonly kind = 'msgpack';
  private readonly packr = new Packr({ useRecords: false });
  private readonly unpackr = new Unpackr({ useRecords: false, copyBuffers: true });

  encode(value: unknown): Uint8Array {
    return this.packr.pack(value);
  }

  encodeInto(value: unknown, target: Buffer, offset: number): Uint8Array {
    if (target.length - offset < minInPlaceRoom) return this.packr.pack(value);
    this.packr.useBuffer(target);
    this.packr.position = offset;
    try {
      return this.packr.pack(value);
    } finally {
      this.packr.useBuffer(parking);
      this.packr.position = parking.length;
    }
  }

  decode(target: Buffer, start: number, end: number): unknown {
    return this.unpackr.unpack(target, { start, end });
  }
}

/** A Buffer of its own holding target[start, end). */
const copyOut = (target: Buffer, start: number, end: number): Buffer =>
  Uint8Array.prototype.slice.call(target, start, end) as Buffer;

function asBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw invalidArg(`${what} must be a Uint8Array or Buffer, got ${describe(value)}`);
}

class RawCodec implements Codec<Uint8Array> {
  readonly kind = 'raw';
  check(value: Uint8Array): void {
    asBytes(value, "a message on a 'raw' channel");
  }
  encode(value: Uint8Array): Uint8Array {
    return asBytes(value, "a message on a 'raw' channel");
  }
  decode(target: Buffer, start: number, end: number): Uint8Array {
    return copyOut(target, start, end);
  }
}

class WrappedCustomCodec<T> implements Codec<T> {
  readonly kind = 'custom';
  constructor(private readonly custom: CustomCodec<T>) {}
  encode(value: T): Uint8Array {
    const bytes = this.custom.encode(value);
    // the codec failed, not the caller: ERR_ENCODE
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`codec.encode() returned ${describe(bytes)}, not a Uint8Array`);
    return bytes;
  }
  decode(target: Buffer, start: number, end: number): T {
    return this.custom.decode(copyOut(target, start, end));
  }
}

export function makeCodec<T>(option: CodecOption<T> | undefined): Codec<T> {
  if (option === undefined || option === 'msgpack') return new MsgpackCodec() as Codec<T>;
  if (option === 'raw') return new RawCodec() as unknown as Codec<T>;
  if (
    option !== null &&
    typeof option === 'object' &&
    typeof option.encode === 'function' &&
    typeof option.decode === 'function'
  )
    return new WrappedCustomCodec(option);
  throw invalidArg(`codec must be 'msgpack', 'raw' or { encode, decode }, got ${describe(option)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return `${typeof value} ${String(value)}`;
}
