// Node streams over a channel, so that a pipe or a socket between processes can
// be swapped for shmchan: a Writable and a Readable of bytes over a 'raw' SPSC
// channel. The CLI's --lines mode uses the same two classes in object mode over
// a msgpack channel, one message per chunk.
//
// A stream is a pipe, not a mailbox: it has one writer and one reader, and a
// side that goes away early is an error for the other one, like EPIPE. Each side
// notices from the channel's stats, and neither writes anything for the other:
//   - The reader goes away before the end (destroyed, or died): the writer fails
//     with ERR_PEER_GONE while it waits for room, or at end() if bytes are unread.
//   - The writer goes away without end() (destroyed, or died): once the reader has
//     read everything the writer committed, it fails with ERR_PEER_GONE.
// The reader removes the channel's name when it closes, whichever side created
// it, so bytes written before the reader arrives wait in the channel for it.
import { Readable, Writable } from 'node:stream';
import { Channel } from './core/channel';
import { invalidArg, incompatible, peerGone, type ShmChanError } from './core/errors';
import { booleanOption, normalizeName, optionNames, optionsObject, timeoutOption, type CreateOptions } from './core/options';
import type { SysvKey } from './core/sysv';

/** The options of createReadStream and createWriteStream: the create options (used
 * only with `create: true`) without codec and mode, which a stream fixes. */
export interface StreamOptions extends Omit<CreateOptions<Uint8Array>, 'codec' | 'mode'> {
  /** Create the channel (exactly one of the two sides does) instead of opening it.
   * The create options apply only then. */
  create?: boolean;
  /** When opening: milliseconds to wait for the channel to appear. Default: no limit. */
  timeout?: number;
  /** Bytes the stream buffers before write() returns false, or before it stops reading ahead. */
  highWaterMark?: number;
  /** Destroys the stream when aborted. */
  signal?: AbortSignal;
}

/** How often a waiting side checks that the other one is still there. */
const PEER_CHECK_MS = 250;

type Side = 'writer' | 'reader';

const streamOptionNames = [...optionNames.create, 'create', 'timeout', 'highWaterMark', 'signal'];
type StreamCodec = 'raw' | 'msgpack';

/** How a stream gets its channel: made at once (create), or opened when it appears. */
interface ChannelSource {
  readonly name: string;
  readonly created: boolean;
  readonly streamOptions: { highWaterMark?: number; signal?: AbortSignal };
  /** The channel; `signal` aborts the wait for it (the stream was destroyed). */
  acquire(signal: AbortSignal): Promise<Channel<unknown>>;
}

function prepare(name: string, options: StreamOptions | undefined, codec: StreamCodec, side: Side): ChannelSource {
  const o = optionsObject(options, streamOptionNames);
  const { create: _create, timeout: _timeout, highWaterMark, signal, unlinkOnClose, ...rest } = o as StreamOptions & Record<string, unknown>;
  const channelName = normalizeName(name);
  const create = booleanOption(o, 'create', false);
  if (rest.codec !== undefined && rest.codec !== codec)
    throw invalidArg(`a ${side === 'writer' ? 'write' : 'read'} stream always uses the '${codec}' codec; leave codec out`);
  if (rest.mode !== undefined && rest.mode !== 'spsc')
    throw invalidArg("a stream has one writer and one reader: mode must be 'spsc'");
  const timeout = timeoutOption(o);
  // The reader removes the name: bytes written before it arrives must still be there.
  const unlink = unlinkOnClose ?? side === 'reader';
  const streamOptions = { highWaterMark, signal };
  if (create) {
    const channel = Channel.create<unknown>(channelName, { ...rest, codec, mode: 'spsc', unlinkOnClose: unlink });
    return { name: channelName, created: true, streamOptions, acquire: async () => channel };
  }
  const openOptions = { codec, unlinkOnClose: unlink, spinMicros: rest.spinMicros, backend: rest.backend, key: rest.key as SysvKey | undefined, timeout };
  return {
    name: channelName,
    created: false,
    streamOptions,
    acquire: async (signal) => {
      const channel = await Channel.connect<unknown>(channelName, { ...openOptions, signal }).catch((error: ShmChanError) => {
        // the channel's advice (leave codec out) is for Channel.open: a stream takes no codec
        if (error.code !== 'ERR_INCOMPATIBLE') throw error;
        throw incompatible(
          `channel '${channelName}' was created with another codec than the '${codec}' a stream uses: a stream reads and writes a channel created by createWriteStream(name, { create: true }), createReadStream(name, { create: true }), 'shmchan send --create' or Channel.create(name, { codec: '${codec}' })`,
        );
      });
      if (channel.mode === 'spsc') return channel;
      channel.close();
      throw incompatible(`channel '${channelName}' is an ${channel.mode} channel; a stream needs an spsc channel`);
    },
  };
}

/** A stream's _construct: acquires the channel, unless the stream is destroyed
 * first (which aborts `connecting`: see destroy() in each stream). */
function construct(
  source: ChannelSource,
  connecting: AbortController,
  set: (channel: Channel<unknown>) => void,
  callback: (error?: Error | null) => void,
): void {
  source.acquire(connecting.signal).then(
    (channel) => {
      set(channel);
      callback();
    },
    (error) => callback(connecting.signal.aborted ? null : error),
  );
}

function readerGoneError(name: string, unread: number): ShmChanError {
  return peerGone(
    `channel '${name}': the reading side went away before the end of the stream, with ${unread} bytes unread (like EPIPE on a pipe)`,
  );
}

/** Several small writes sent as one message, joined in the ring itself. */
class Joined {
  constructor(
    readonly parts: Buffer[],
    readonly length: number,
  ) {}

  readonly fill = (target: Buffer): void => {
    let offset = 0;
    for (const part of this.parts) offset += part.copy(target, offset);
  };
}

/** The writing side. Each write becomes one message, or several when it is larger
 * than the channel's maxMessageSize (bytes mode). A write's callback runs once its
 * bytes are in the ring, so a full ring holds writes back and write() returns false. */
export class ChannelWriteStream extends Writable {
  private channel: Channel<unknown> | undefined;
  private readonly connecting = new AbortController();
  private sawReader = false;

  constructor(
    private readonly source: ChannelSource,
    objectMode: boolean,
  ) {
    super({ ...source.streamOptions, objectMode });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    construct(this.source, this.connecting, (channel) => (this.channel = channel), callback);
  }

  /** Node runs _destroy only after _construct: a stream still waiting for its
   * channel stops waiting here. */
  override destroy(error?: Error): this {
    this.connecting.abort();
    return super.destroy(error);
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.deliver(this.messagesOf([chunk]), callback);
  }

  override _writev(chunks: { chunk: unknown }[], callback: (error?: Error | null) => void): void {
    const items = chunks.map((c) => c.chunk);
    if (!this.writableObjectMode) {
      // small writes that piled up while the ring was full travel as one message
      const total = items.reduce((sum: number, c) => sum + (c as Buffer).length, 0);
      if (total <= this.channel!.maxMessageSize) return this.deliver([new Joined(items as Buffer[], total)], callback);
    }
    this.deliver(this.messagesOf(items), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      const unread = this.unreadByGoneReader();
      if (unread > 0) return callback(readerGoneError(this.source.name, unread));
      this.channel!.end();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.channel?.close();
    this.channel = undefined;
    callback(error);
  }

  /** Bytes mode: pieces of at most maxMessageSize bytes, empty writes dropped. */
  private messagesOf(chunks: unknown[]): unknown[] {
    if (this.writableObjectMode) return chunks;
    const max = this.channel!.maxMessageSize;
    const pieces: Buffer[] = [];
    for (const chunk of chunks as Buffer[])
      for (let offset = 0; offset < chunk.length; offset += max) pieces.push(chunk.subarray(offset, offset + max));
    return pieces;
  }

  private deliver(messages: unknown[], callback: (error?: Error | null) => void): void {
    const channel = this.channel!;
    let next = 0;
    const afterWait = () => {
      next++;
      sendRest();
    };
    const sendRest = (): void => {
      try {
        for (; next < messages.length; next++) {
          const message = messages[next];
          const sent = message instanceof Joined ? channel.trySendWith(message.length, message.fill) : channel.trySend(message);
          if (!sent) return this.waitForRoom(message, afterWait, callback);
        }
      } catch (error) {
        return callback(error as Error);
      }
      callback();
    };
    sendRest();
  }

  /** Sends once there is room, looking every PEER_CHECK_MS for a reader that left. */
  private waitForRoom(message: unknown, sent: () => void, failed: (error: Error) => void): void {
    this.sendWaiting(message).then(sent, (error) => {
      if (this.destroyed || (error as ShmChanError).code !== 'ERR_TIMEOUT') return failed(error);
      let unread: number;
      try {
        unread = this.unreadByGoneReader();
      } catch (statsError) {
        return failed(statsError as Error);
      }
      if (unread > 0) return failed(readerGoneError(this.source.name, unread));
      this.waitForRoom(message, sent, failed);
    });
  }

  /** Sends once there is room, for at most PEER_CHECK_MS. Bytes are copied into the
   * ring when there is room for them (sendWith), not first into a copy to wait with
   * (send): the stream owns its chunks until their callback has run. */
  private sendWaiting(message: unknown): Promise<void> {
    const channel = this.channel!;
    const options = { timeout: PEER_CHECK_MS };
    if (message instanceof Joined) return channel.sendWith(message.length, message.fill, options);
    if (this.writableObjectMode) return channel.send(message, options);
    const bytes = message as Buffer;
    return channel.sendWith(bytes.length, (target) => void bytes.copy(target), options);
  }

  /** Bytes in the ring that a reader, once attached and now gone, left unread (else 0).
   * A reader that has not arrived yet is not gone: the bytes wait for it. */
  private unreadByGoneReader(): number {
    const stats = this.channel!.stats();
    if (stats.consumerPid !== null) {
      this.sawReader = true;
      return 0;
    }
    if (!this.sawReader && stats.messagesReceived === 0) return 0;
    return Math.max(0, stats.bytesSent - stats.bytesReceived);
  }
}

/**
 * A Buffer of its own with a view's bytes: what a read stream pushes, since its
 * reader may keep it. Read as a view and copied into memory that is not cleared
 * first, the bytes are written once, where receive() would clear the new Buffer
 * and then copy into it.
 */
function copyOf(view: Buffer): Buffer {
  const copy = Buffer.allocUnsafe(view.length);
  view.copy(copy);
  return copy;
}

/** Stands for a message that is msgpack nil in an object-mode read stream, where
 * pushing null would mean the end of the stream. */
export const NIL_MESSAGE: unique symbol = Symbol('shmchan.nil');

const EMPTY: unique symbol = Symbol('empty');
const SETTLED: unique symbol = Symbol('settled');

/** The reading side: pushes each message (a Buffer in bytes mode) and ends at the
 * channel's end of stream. It reads ahead only up to its highWaterMark. */
export class ChannelReadStream extends Readable {
  private channel: Channel<unknown> | undefined;
  private readonly connecting = new AbortController();
  /** Node asked for data that has not been pushed yet. */
  private wanted = false;
  /** A read loop or a wait for data is under way. */
  private pumping = false;
  private sawWriter = false;

  constructor(
    private readonly source: ChannelSource,
    objectMode: boolean,
  ) {
    super({ ...source.streamOptions, objectMode });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    construct(this.source, this.connecting, (channel) => (this.channel = channel), callback);
  }

  /** Node runs _destroy only after _construct: a stream still waiting for its
   * channel stops waiting here. */
  override destroy(error?: Error): this {
    this.connecting.abort();
    return super.destroy(error);
  }

  override _read(): void {
    this.wanted = true;
    if (!this.pumping) this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const channel = this.channel;
    this.channel = undefined;
    channel?.close();
    callback(error);
  }

  /** Pushes what the ring holds while Node wants more, then waits for more. */
  private pump(): void {
    this.pumping = true;
    while (this.wanted) {
      const message = this.nextMessage();
      if (message === SETTLED) return;
      if (message === EMPTY) return this.waitForData();
      this.deliver(message);
    }
    this.pumping = false;
  }

  private deliver(message: unknown): void {
    this.wanted = false;
    // push() may call _read() again, which sets wanted
    if (this.push(message === null && this.readableObjectMode ? NIL_MESSAGE : message)) this.wanted = true;
  }

  /** The next message, EMPTY, or SETTLED once the stream has ended or failed. */
  private nextMessage(): unknown {
    try {
      if (this.readableObjectMode) {
        const message = this.channel!.tryReceive();
        return message === undefined ? EMPTY : message;
      }
      const view = (this.channel as Channel<Buffer>).tryReceiveView();
      return view === undefined ? EMPTY : copyOf(view);
    } catch (error) {
      this.settle(error as Error);
      return SETTLED;
    }
  }

  private settle(error: Error): void {
    if ((error as ShmChanError).code === 'ERR_ENDED') {
      this.push(null);
    } else {
      this.destroy(error);
    }
  }

  private waitForData(): void {
    const channel = this.channel!;
    const next = this.readableObjectMode ? channel.receive({ timeout: PEER_CHECK_MS }) : (channel as Channel<Buffer>).receiveView({ timeout: PEER_CHECK_MS }).then(copyOf);
    next.then(
      (message) => {
        if (this.destroyed) return;
        this.deliver(message);
        this.pump();
      },
      (error) => {
        if (this.destroyed) return;
        if ((error as ShmChanError).code !== 'ERR_TIMEOUT') return this.settle(error);
        if (!this.writerGone()) return this.pump();
        // Everything the writer committed before it went is visible now.
        const message = this.nextMessage();
        if (message === SETTLED) return;
        if (message === EMPTY)
          return this.destroy(
            peerGone(
              `channel '${this.source.name}': the writing side went away without ending the stream (it died, or was destroyed before end())`,
            ),
          );
        this.deliver(message);
        this.pump();
      },
    );
  }

  /** No live writer, and one was there: it wrote, it was seen, or it created the
   * channel (when this side did not) and has exited. */
  private writerGone(): boolean {
    const stats = this.channel!.stats();
    if (stats.producers > 0) {
      this.sawWriter = true;
      return false;
    }
    if (stats.ended) return false; // the next nextMessage() sees the end
    return this.sawWriter || stats.messagesSent > 0 || (!this.source.created && stats.creatorPid === null);
  }
}

/** A Writable of bytes over a 'raw' SPSC channel: backpressure as for any Writable,
 * end() ends the channel, writes larger than maxMessageSize are split. */
export function createWriteStream(name: string, options?: StreamOptions): Writable {
  return new ChannelWriteStream(prepare(name, options, 'raw', 'writer'), false);
}

/** A Readable of Buffers over a 'raw' SPSC channel that ends at the channel's end of
 * stream. It removes the channel's name when it closes. */
export function createReadStream(name: string, options?: StreamOptions): Readable {
  return new ChannelReadStream(prepare(name, options, 'raw', 'reader'), false);
}

/** Object mode over a msgpack channel, one value per message (the CLI's --lines). */
export function createMessageWriteStream(name: string, options?: StreamOptions): Writable {
  return new ChannelWriteStream(prepare(name, options, 'msgpack', 'writer'), true);
}

/** Object mode over a msgpack channel; msgpack nil arrives as NIL_MESSAGE. */
export function createMessageReadStream(name: string, options?: StreamOptions): Readable {
  return new ChannelReadStream(prepare(name, options, 'msgpack', 'reader'), true);
}
