// How values become bytes and back. A codec may encode straight into the ring
// (encodeInto) and always decodes straight out of it, so the common message
// is copied once, by the encoder.
import { Packr, REUSE_BUFFER_MODE, Unpackr } from 'msgpackr';
import { NOT_PLAIN, NO_ROOM, packPlain } from './plain-pack';
import * as L from './layout';
import { LeaveUnread, describe, invalidArg } from './errors';
import type { SharedStructures } from './structures';

/** A codec of your own, passed as the `codec` option: every process of the channel must pass the same one. */
export interface CustomCodec<T> {
  /** The bytes of a message; throwing gives ERR_ENCODE and sends nothing. */
  encode(value: T): Uint8Array;
  /** Gets a Buffer of its own, which it may keep. */
  decode(bytes: Uint8Array): T;
}

/** The `codec` option: 'msgpack' (default), 'raw' (Buffers as they are), or a CustomCodec. */
export type CodecOption<T> = 'msgpack' | 'raw' | CustomCodec<T>;
export type CodecKind = 'msgpack' | 'raw' | 'custom';

export interface Codec<T> {
  readonly kind: CodecKind;
  /** The encoded bytes; they may live in a scratch buffer until the next encode. */
  encode(value: T): Uint8Array;
  /**
   * Encodes into target at offset when it fits before target's end, and answers
   * the number of bytes written there; otherwise encodes anywhere and answers the
   * bytes. May leave bytes in target past offset either way.
   */
  encodeInto?(value: T, target: Buffer, offset: number): number | Uint8Array;
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

/**
 * How many of our packs are under way in this process. A value's getter or
 * toJSON may send on another channel while msgpackr packs it; msgpackr packs
 * such a nested value into a buffer of its own and then goes back to the outer
 * one, but only if the outer target is left alone. So a nested pack must not
 * point msgpackr at its own ring (encodeInto): it encodes as encode() does.
 */
let packsUnderWay = 0;
const minInPlaceRoom = 0x800 + 16; // msgpackr starts a new buffer when less than 2 KiB is left

/**
 * msgpackr decodes a source shorter than this in JavaScript and a longer one with
 * its native string extractor, which scans the source once per message and only
 * pays off for long ones. A message decoded in place, at an offset deep in the
 * ring, always looks long to it; so a short message is first copied to a scratch
 * buffer and decoded from there, as it would be from a buffer of its own.
 */
const smallMessage = 140;

/** The largest plain value encode() packs itself: most messages are far smaller,
 * and a value that does not fit is packed again by msgpackr. */
const PACKED_MAX = 16 * 1024;

/** Values sent straight to msgpackr after one that packPlain could not pack (not
 * plain, or too large): a channel that sends such values would otherwise walk each
 * of them twice. Then packPlain is tried again. */
const PLAIN_SKIPS = 64;

/**
 * msgpackr encodes a function, anywhere in a value, as undefined: sent alone it
 * would reach the consumer as the "empty" answer, and as a property it would be
 * lost without a word. msgpackr calls writeFunction only for a function, so
 * refusing there costs the common path nothing; the throw becomes ERR_ENCODE,
 * and nothing is sent.
 */
function refuseFunction(...args: unknown[]): never {
  const fn = args[0] as Function; // msgpackr passes the function; its typings leave it out
  throw new TypeError(`a function (${fn.name || 'anonymous'}) cannot be sent; send data, not code`);
}

/**
 * V8 keeps a typed array of up to this many bytes on its heap. A larger one made by
 * slice() gets memory of its own outside it, which costs microseconds per message
 * (and GC work); Buffer.allocUnsafe takes one below 4 KiB from Node's pool.
 */
const ON_HEAP_MAX = 64;

/** Called with `new` by slice() on a PooledSlices: answers the Buffer to copy into
 * (Buffer.alloc makes a small one on V8's heap, as slice() would). */
function PooledBuffer(length: number): Buffer {
  return length <= ON_HEAP_MAX ? Buffer.alloc(length) : Buffer.allocUnsafe(length);
}

/**
 * The ring's bytes as decoders copy out of them: Uint8Array.prototype.slice makes
 * its result with the source's species constructor, on a Buffer a fresh ArrayBuffer
 * per copy, on this a PooledBuffer. A raw message is sliced out of it (copyOut), and
 * so is each byte array msgpackr copies out with copyBuffers (standard slice
 * semantics, no change to msgpackr). A Buffer everywhere else (Buffer.prototype is
 * on its chain: msgpackr reads strings with latin1Slice when there is one).
 */
class PooledSlices extends Uint8Array {
  static get [Symbol.species](): unknown {
    return PooledBuffer;
  }
}
Object.setPrototypeOf(PooledSlices.prototype, Buffer.prototype);

/** A Buffer that msgpackr returned in REUSE_BUFFER_MODE: its encoding is [start, end). */
type ReusedTarget = Buffer & { start: number; end: number };

/** Plain MessagePack, or with { records } msgpackr's record extension over the
 * channel's shared structures (structures.ts). */
class MsgpackCodec implements Codec<unknown> {
  readonly kind = 'msgpack';
  private readonly packr: Packr;
  private unpackr: Unpackr;
  /** The table length the unpackr's structures were loaded at (records only). */
  private loadedLength = -1;
  private readonly scratch = new PooledSlices(smallMessage) as unknown as Buffer;
  /** Where encode() packs a plain value (a larger one is left to msgpackr); made
   * on the first encode(), which a consumer's handle never makes. */
  private packed: Buffer | undefined;
  /** The ring, as msgpackr's source for a message decoded in place. */
  private readonly sources = pooledView();
  private readonly scratchWords = new Int32Array(this.scratch.buffer, this.scratch.byteOffset, smallMessage >> 2);
  private readonly sourceWords = wordView();

  constructor(readonly records?: SharedStructures) {
    // copyBuffers: decoded byte arrays are copies, never views of the ring or the scratch buffer
    if (records === undefined) {
      this.packr = new Packr({ useRecords: false, writeFunction: refuseFunction });
      this.unpackr = new Unpackr({ useRecords: false, copyBuffers: true });
      return;
    }
    // msgpackr passes saveStructures a second argument that its typings leave out
    const saveStructures = (structures: {}[], isCompatible?: (existing: string[][]) => boolean) =>
      records.save(structures as string[][], isCompatible ?? (() => true));
    this.packr = new Packr({
      writeFunction: refuseFunction,
      getStructures: () => records.load(),
      saveStructures,
      shouldShareStructure: () => records.shouldShare(),
      maxSharedStructures: L.MAX_STRUCTURES,
    });
    this.unpackr = this.recordsUnpackr();
  }

  /**
   * An Unpackr that already knows every published structure. msgpackr could load
   * them itself halfway through a message (getStructures), but then decodes the
   * rest of that message from a Uint8Array copy, and its byte arrays would come
   * out as Uint8Array instead of Buffer. Structures are published before the
   * messages that use them, so loading when the table grew is always early enough.
   */
  private recordsUnpackr(): Unpackr {
    const records = this.records!;
    this.loadedLength = records.publishedLength();
    return new Unpackr({
      structures: records.load(),
      getStructures: () => records.load(),
      copyBuffers: true,
      maxSharedStructures: L.MAX_STRUCTURES,
    });
  }
  encode(value: unknown): Uint8Array {
    const packed = (this.packed ??= Buffer.allocUnsafe(PACKED_MAX));
    const end = this.tryPlain(value, packed, 0, true);
    if (end >= 0) return packed.subarray(0, end);
    packsUnderWay++;
    try {
      return this.packr.pack(value);
    } finally {
      packsUnderWay--;
    }
  }

  encodeInto(value: unknown, target: Buffer, offset: number): number | Uint8Array {
    // short of room at the ring's end, the next value is tried again: the ring wraps
    const end = this.tryPlain(value, target, offset, false);
    if (end >= 0) return end - offset;
    if (target.length - offset < minInPlaceRoom || packsUnderWay !== 0) return this.encode(value);
    packsUnderWay++;
    this.packr.useBuffer(target);
    this.packr.position = offset;
    try {
      // REUSE_BUFFER_MODE answers with the buffer itself, sparing a subarray per message
      const result = this.packr.pack(value, REUSE_BUFFER_MODE) as ReusedTarget;
      if (result === target) {
        if (result.start === offset) return result.end - offset;
      } else if (result.buffer === target.buffer && result.byteOffset === target.byteOffset + offset) {
        return result.length; // saving new record structures answers a view, not the buffer
      }
      // it outgrew the room and moved to a new buffer (with start and end), or a view of one
      return typeof result.start === 'number' ? result.subarray(result.start, result.end) : result;
    } finally {
      packsUnderWay--;
      this.packr.useBuffer(parking);
      this.packr.position = parking.length;
    }
  }

  /** Values left before packPlain is tried again (PLAIN_SKIPS). */
  private plainSkips = 0;

  /** A plain value packed without msgpackr (plain-pack.ts) into target[offset...]:
   * where it ends, or a negative answer. Not with records (msgpackr's structures),
   * nor inside another pack (a getter that sends: it would write over the outer
   * value's bytes). `skipWhenFull`: a value too large also starts PLAIN_SKIPS. */
  private tryPlain(value: unknown, target: Buffer, offset: number, skipWhenFull: boolean): number {
    if (this.records !== undefined || packsUnderWay !== 0) return NOT_PLAIN;
    if (this.plainSkips > 0) {
      this.plainSkips--;
      return NOT_PLAIN;
    }
    packsUnderWay++;
    try {
      const end = packPlain(value, target, offset, target.length);
      if (end === NOT_PLAIN || (end === NO_ROOM && skipWhenFull)) this.plainSkips = PLAIN_SKIPS;
      return end;
    } finally {
      packsUnderWay--;
    }
  }

  decode(target: Buffer, start: number, end: number): unknown {
    if (this.records !== undefined && this.records.publishedLength() !== this.loadedLength) this.unpackr = this.recordsUnpackr();
    const length = end - start;
    if (length >= smallMessage) return this.unpackr.unpack(this.sources.of(target), { start, end });
    this.copyToScratch(target, start, length);
    return this.unpackr.unpack(this.scratch, length);
  }

  /** Four bytes at a time: for a small message, Buffer.copy's argument handling
   * costs more than the copy. */
  private copyToScratch(target: Buffer, start: number, length: number): void {
    const from = (start & 3) === 0 ? this.sourceWords.of(target) : undefined;
    if (from !== undefined) copyWords(from, this.scratchWords, target, this.scratch, start, length);
    else target.copy(this.scratch, 0, start, start + length);
  }
}

/**
 * A view made from the last byte array asked for, made again only when the array
 * changes: a codec decodes message after message from the same ring, and must
 * build no view per message, nor read byteOffset per message (a generic property
 * load, which shows in a raw consumer's profile).
 */
class LastView<V> {
  private bytes: Uint8Array | undefined;
  private view: V | undefined;
  constructor(private readonly make: (bytes: Uint8Array) => V) {}

  of(bytes: Uint8Array): V {
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.view = this.make(bytes);
    }
    return this.view as V;
  }
}

/** An Int32Array over the bytes, for the small copies that go a word at a time;
 * undefined when they do not start on a word. */
const wordView = () =>
  new LastView((bytes) => ((bytes.byteOffset & 3) === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2) : undefined));

/** The same bytes as a PooledSlices: what is sliced out of it is a Buffer of its own. */
const pooledView = () => new LastView((bytes) => new PooledSlices(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length) as unknown as Buffer);

/** What a reader needs of a codec. A decoder that `holds` answers a view of the
 * ring: the reader consumes the message only at its next read, not at once. */
export type Decoder<T> = Pick<Codec<T>, 'decode'> & { readonly holds?: boolean };

/** receiveView's decoder: the message's bytes as a Buffer over the ring itself. */
export class RingView implements Decoder<Buffer> {
  readonly holds = true;
  decode(bytes: Buffer, start: number, end: number): Buffer {
    return bytes.subarray(start, end);
  }
}

/**
 * receiveInto's decoder: copies a message's bytes into the caller's buffer and
 * answers their length, so that receiving allocates nothing (allocating and first
 * touching a fresh large Buffer costs several times a copy into warm memory).
 * A message longer than the buffer is left unread.
 */
export class CopyInto implements Decoder<number> {
  target: Uint8Array = new Uint8Array(0);
  private readonly sourceWords = wordView();
  private readonly targetWords = wordView();

  decode(bytes: Buffer, start: number, end: number): number {
    const length = end - start;
    const target = this.target;
    if (length > target.length) throw new LeaveUnread(length, target.length);
    const from = length <= SMALL_COPY && (start & 3) === 0 ? this.sourceWords.of(bytes) : undefined;
    const to = from !== undefined ? this.targetWords.of(target) : undefined;
    if (from !== undefined && to !== undefined) copyWords(from, to, bytes, target, start, length);
    // set() of a view made from the ArrayBuffer: bytes.subarray() builds a Buffer,
    // which cost more than the copy itself for small messages
    else target.set(new Uint8Array(bytes.buffer, bytes.byteOffset + start, length));
    return length;
  }
}

/** A small message copied from bytes[start] to target[0] a word at a time, then
 * its last 0-3 bytes: for small messages faster than set(), whose native call
 * costs more than the copy. Only the message's own bytes of target are written.
 * from and to are word views of bytes and target; start is a multiple of 4. */
function copyWords(from: Int32Array, to: Int32Array, bytes: Uint8Array, target: Uint8Array, start: number, length: number): void {
  const first = start >> 2;
  const words = length >> 2;
  for (let i = 0; i < words; i++) to[i] = from[first + i];
  for (let i = words << 2; i < length; i++) target[i] = bytes[start + i];
}

/** Up to this many bytes, CopyInto copies words itself rather than calling set(). */
const SMALL_COPY = 256;

/** A Buffer of its own holding source[start, end), from a pooledView (see
 * PooledBuffer): small ones, as Node's are, may share a pooled ArrayBuffer. */
const copyOut = (source: Buffer, start: number, end: number): Buffer => Uint8Array.prototype.slice.call(source, start, end) as Buffer;

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
  private readonly sources = pooledView();
  decode(target: Buffer, start: number, end: number): Uint8Array {
    return copyOut(this.sources.of(target), start, end);
  }
}

class WrappedCustomCodec<T> implements Codec<T> {
  readonly kind = 'custom';
  private readonly sources = pooledView();
  constructor(private readonly custom: CustomCodec<T>) {}
  encode(value: T): Uint8Array {
    const bytes = this.custom.encode(value);
    // the codec failed, not the caller: ERR_ENCODE
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`codec.encode() returned ${describe(bytes)}, not a Uint8Array`);
    return bytes;
  }
  decode(target: Buffer, start: number, end: number): T {
    return this.custom.decode(copyOut(this.sources.of(target), start, end));
  }
}

/** `records`: the channel's shared structures, for a channel created with { records: true }. */
export function makeCodec<T>(option: CodecOption<T> | undefined, records?: SharedStructures): Codec<T> {
  if (option === undefined || option === 'msgpack') return new MsgpackCodec(records) as Codec<T>;
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
