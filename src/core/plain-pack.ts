// MessagePack for plain data, written without msgpackr: numbers, strings, booleans,
// null, undefined, plain objects, arrays, Buffers and Uint8Arrays. msgpackr's pack()
// pays a fixed cost per call and takes a generic path for every byte array, and
// those were most of a small message's send (bench/README.md, "Plain values packed
// without msgpackr"). The bytes are exactly those msgpackr writes with
// { useRecords: false }; test/plain-pack.test.ts compares the two on random values.
// Anything else in a value (a Map, Date, class instance, bigint, function, symbol)
// or a nesting deeper than MAX_DEPTH answers NOT_PLAIN, a value that does not fit
// NO_ROOM, and the codec packs the whole value with msgpackr instead. A getter of
// a value that turns out not plain is then read twice.

/** What packPlain answers when msgpackr must pack the value. */
export const NOT_PLAIN = -1;
/** What packPlain answers when the value does not fit in the room given. */
export const NO_ROOM = -2;

/** Deeper values are left to msgpackr, which then fails as it would (or packs them). */
const MAX_DEPTH = 64;

/** Strings shorter than this are encoded here a char at a time, as msgpackr does;
 * longer ones by Buffer.write, whose native call then costs less than the loop. */
const SHORT_STRING = 0x40;

const float = new Float64Array(1);
const floatBytes = new Uint8Array(float.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Writes value as MessagePack at target[offset], within target[offset, end), and
 * answers where its bytes end; NOT_PLAIN or NO_ROOM (both negative) when msgpackr
 * must pack it (see above). Bytes past offset may have been written either way.
 */
export function packPlain(value: unknown, target: Buffer, offset: number, end: number): number {
  return write(value, target, offset, end, 0);
}

function write(value: unknown, t: Buffer, p: number, end: number, depth: number): number {
  // the longest item written without a check of its own: a float64 (9 bytes)
  if (p + 9 > end) return NO_ROOM;
  switch (typeof value) {
    case 'number':
      return writeNumber(value, t, p);
    case 'string':
      return writeString(value, t, p, end);
    case 'boolean':
      t[p] = value ? 0xc3 : 0xc2;
      return p + 1;
    case 'undefined':
      // msgpackr's undefined: fixext 1 of type 0
      t[p] = 0xd4;
      t[p + 1] = 0;
      t[p + 2] = 0;
      return p + 3;
    case 'object': {
      if (value === null) {
        t[p] = 0xc0;
        return p + 1;
      }
      if (depth === MAX_DEPTH) return NOT_PLAIN;
      const constructor = value.constructor;
      if (constructor === Object) return writeObject(value as Record<string, unknown>, t, p, end, depth + 1);
      if (constructor === Array) return writeArray(value as unknown[], t, p, end, depth + 1);
      if (constructor === Buffer || constructor === Uint8Array) return writeBin(value as Uint8Array, t, p, end);
      return NOT_PLAIN;
    }
    default:
      return NOT_PLAIN;
  }
}

function writeNumber(n: number, t: Buffer, p: number): number {
  if (n >>> 0 === n) {
    if (n < 0x80) {
      t[p] = n;
      return p + 1;
    }
    if (n < 0x100) {
      t[p] = 0xcc;
      t[p + 1] = n;
      return p + 2;
    }
    if (n < 0x10000) {
      t[p] = 0xcd;
      t[p + 1] = n >> 8;
      t[p + 2] = n & 0xff;
      return p + 3;
    }
    t[p] = 0xce;
    return writeUint32(n, t, p + 1);
  }
  if (n >> 0 === n) {
    if (n >= -0x20) {
      t[p] = 0x100 + n;
      return p + 1;
    }
    if (n >= -0x80) {
      t[p] = 0xd0;
      t[p + 1] = n + 0x100;
      return p + 2;
    }
    if (n >= -0x8000) {
      t[p] = 0xd1;
      t[p + 1] = (n >> 8) & 0xff;
      t[p + 2] = n & 0xff;
      return p + 3;
    }
    t[p] = 0xd2;
    return writeUint32(n >>> 0, t, p + 1);
  }
  // every other number as a float64, big-endian
  float[0] = n;
  t[p] = 0xcb;
  if (littleEndian) for (let i = 0; i < 8; i++) t[p + 1 + i] = floatBytes[7 - i];
  else for (let i = 0; i < 8; i++) t[p + 1 + i] = floatBytes[i];
  return p + 9;
}

function writeUint32(n: number, t: Buffer, p: number): number {
  t[p] = n >>> 24;
  t[p + 1] = (n >> 16) & 0xff;
  t[p + 2] = (n >> 8) & 0xff;
  t[p + 3] = n & 0xff;
  return p + 4;
}

/** UTF-8 with the shortest header; a lone surrogate becomes U+FFFD, as in msgpackr and Buffer.write. */
function writeString(s: string, t: Buffer, p: number, end: number): number {
  const chars = s.length;
  if (chars >= SHORT_STRING) return writeLongString(s, t, p, end);
  // a char takes at most 3 bytes (a surrogate pair: 4 for 2 chars); the header 1 or 2
  if (p + 2 + chars * 3 > end) return NO_ROOM;
  let q = p + 1;
  for (let i = 0; i < chars; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      t[q++] = c;
    } else if (c < 0x800) {
      t[q++] = (c >> 6) | 0xc0;
      t[q++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xfc00) === 0xd800 && i + 1 < chars && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c & 0x3ff) << 10) + (s.charCodeAt(++i) & 0x3ff);
      t[q++] = (c >> 18) | 0xf0;
      t[q++] = ((c >> 12) & 0x3f) | 0x80;
      t[q++] = ((c >> 6) & 0x3f) | 0x80;
      t[q++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xf800) === 0xd800) {
      t[q++] = 0xef;
      t[q++] = 0xbf;
      t[q++] = 0xbd;
    } else {
      t[q++] = (c >> 12) | 0xe0;
      t[q++] = ((c >> 6) & 0x3f) | 0x80;
      t[q++] = (c & 0x3f) | 0x80;
    }
  }
  const length = q - p - 1;
  if (length < 0x20) {
    t[p] = 0xa0 | length;
    return q;
  }
  // str 8: one more header byte, so the bytes move up by one
  t.copyWithin(p + 2, p + 1, q);
  t[p] = 0xd9;
  t[p + 1] = length;
  return q + 1;
}

function writeLongString(s: string, t: Buffer, p: number, end: number): number {
  const length = Buffer.byteLength(s, 'utf8');
  if (p + 5 + length > end) return NO_ROOM;
  p = writeSizeHeader(length, 0xd9, t, p);
  t.write(s, p, length, 'utf8');
  return p + length;
}

/** The header of a str or bin of `length` bytes, whose 8-bit form is `code8` and
 * 16- and 32-bit forms the two codes after it: answers where the bytes go. */
function writeSizeHeader(length: number, code8: number, t: Buffer, p: number): number {
  if (length < 0x100) {
    t[p] = code8;
    t[p + 1] = length;
    return p + 2;
  }
  if (length < 0x10000) {
    t[p] = code8 + 1;
    t[p + 1] = length >> 8;
    t[p + 2] = length & 0xff;
    return p + 3;
  }
  t[p] = code8 + 2;
  return writeUint32(length, t, p + 1);
}

/** A map 16 whatever the size, its size written after the entries (as msgpackr does):
 * the object's own enumerable keys, in for-in order. */
function writeObject(object: Record<string, unknown>, t: Buffer, p: number, end: number, depth: number): number {
  t[p] = 0xde;
  const sizeAt = p + 1;
  p += 3;
  let size = 0;
  // msgpackr's test for own keys, kept as is so that the bytes stay the same
  const ownOnly = typeof object.hasOwnProperty === 'function';
  for (const key in object) {
    if (ownOnly && !object.hasOwnProperty(key)) continue;
    p = writeString(key, t, p, end);
    if (p < 0) return p;
    p = write(object[key], t, p, end, depth);
    if (p < 0) return p;
    size++;
  }
  if (size > 0xffff) return NOT_PLAIN;
  t[sizeAt] = size >> 8;
  t[sizeAt + 1] = size & 0xff;
  return p;
}

function writeArray(array: unknown[], t: Buffer, p: number, end: number, depth: number): number {
  const length = array.length;
  if (length < 0x10) {
    t[p++] = 0x90 | length;
  } else if (length < 0x10000) {
    t[p] = 0xdc;
    t[p + 1] = length >> 8;
    t[p + 2] = length & 0xff;
    p += 3;
  } else {
    t[p] = 0xdd;
    p = writeUint32(length, t, p + 1);
  }
  for (let i = 0; i < length; i++) {
    p = write(array[i], t, p, end, depth);
    if (p < 0) return p;
  }
  return p;
}

/** Up to this many bytes a byte array is copied a byte at a time: set()'s native call costs more. */
const SMALL_BIN = 32;

function writeBin(bytes: Uint8Array, t: Buffer, p: number, end: number): number {
  const length = bytes.length;
  if (p + 5 + length > end) return NO_ROOM;
  p = writeSizeHeader(length, 0xc4, t, p);
  if (length <= SMALL_BIN) for (let i = 0; i < length; i++) t[p + i] = bytes[i];
  else t.set(bytes, p);
  return p + length;
}
