// `shmchan send` and `recv`: the two halves of a pipe, stdin -> channel and
// channel -> stdout, over the streams of src/streams.ts.
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ShmChanError } from '../core/errors';
import { normalizeName } from '../core/options';
import { inspect } from '../list';
import {
  NIL_MESSAGE,
  createMessageReadStream,
  createMessageWriteStream,
  createReadStream,
  createWriteStream,
  type StreamOptions,
} from '../streams';
import { UsageError, expectPositionals, sysvOptions, sysvOptionsHelp, sysvPlace, type Command, type Values } from './command';

const streamOptions = {
  create: { type: 'boolean' },
  lines: { type: 'boolean' },
  capacity: { type: 'string' },
  timeout: { type: 'string' },
  ...sysvOptions,
} as const;

function parseSize(text: string): number {
  const match = /^(\d+)\s*([kmg]?)(i?b)?$/i.exec(text.trim());
  if (match === null) throw new UsageError(`--capacity must be a number of bytes such as 65536, 64K or 16M, got '${text}'`);
  return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase());
}

function channelStreamOptions(values: Values): StreamOptions {
  const options: StreamOptions = { create: values.create === true, ...sysvPlace(values) };
  if (values.capacity !== undefined) {
    if (!values.create) throw new UsageError('--capacity applies only with --create');
    options.capacity = parseSize(values.capacity as string);
  }
  if (values.timeout !== undefined) {
    if (values.create) throw new UsageError('--timeout applies only without --create');
    const timeout = Number(values.timeout);
    if (!/^\d+$/.test(values.timeout as string) || !Number.isSafeInteger(timeout))
      throw new UsageError(`--timeout must be a whole number of milliseconds, got '${values.timeout}'`);
    options.timeout = timeout;
  }
  return options;
}

/** One message per line: the bytes up to each newline, decoded as UTF-8. A last
 * line without a newline is a message too. */
function splitLines(): Transform {
  let partial: Buffer[] = [];
  return new Transform({
    readableObjectMode: true,
    transform(chunk: Buffer, _encoding, callback) {
      let start = 0;
      for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, newline);
        this.push((partial.length === 0 ? piece : Buffer.concat([...partial, piece])).toString('utf8'));
        partial = [];
        start = newline + 1;
      }
      if (start < chunk.length) partial.push(chunk.subarray(start));
      callback();
    },
    flush(callback) {
      if (partial.length > 0) this.push(Buffer.concat(partial).toString('utf8'));
      callback();
    },
  });
}

function lineOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === NIL_MESSAGE) return 'null';
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
}

/** Messages to text, one line each, written in batches rather than a write per line. */
function formatLines(): Transform {
  let batch = '';
  let scheduled = false;
  const flushBatch = (stream: Transform) => {
    scheduled = false;
    if (batch.length > 0) stream.push(batch);
    batch = '';
  };
  return new Transform({
    writableObjectMode: true,
    transform(value, _encoding, callback) {
      batch += `${lineOf(value)}\n`;
      if (batch.length >= 1 << 16) flushBatch(this);
      else if (!scheduled) {
        scheduled = true;
        setImmediate(() => flushBatch(this));
      }
      callback();
    },
    flush(callback) {
      flushBatch(this);
      callback();
    },
  });
}

const interruptions: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

interface ChannelPipeline {
  /** The stream over the channel: destroyed first on an interruption. */
  channel: Readable | Writable;
  stages: (Readable | Writable | Transform)[];
}

/**
 * Builds the pipeline and runs it. On Ctrl-C (or SIGTERM, SIGHUP) the channel's
 * stream is destroyed first, so a receiving side removes the channel and the
 * writer learns of it, and then the process dies of the same signal, as a shell
 * expects. The handlers are in place before the channel is created: a signal
 * can no longer kill the process between the two and leave the channel behind.
 */
async function runChannelPipeline(build: () => ChannelPipeline): Promise<void> {
  let interrupted: NodeJS.Signals | undefined;
  let channel: Readable | Writable | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    channel?.destroy();
  };
  for (const signal of interruptions) process.once(signal, onSignal);
  try {
    const built = build();
    channel = built.channel;
    await pipeline(built.stages);
  } catch (error) {
    if (interrupted !== undefined) {
      for (const signal of interruptions) process.removeListener(signal, onSignal);
      process.kill(process.pid, interrupted);
    }
    throw error;
  } finally {
    for (const signal of interruptions) process.removeListener(signal, onSignal);
  }
}

/** Turns the codec mismatch between --lines and bytes into advice for this CLI:
 * the channel's header says which one it carries. */
function streamError(error: unknown, name: string, lines: boolean, options: StreamOptions): unknown {
  const e = error as ShmChanError;
  if (e.code === 'ERR_INCOMPATIBLE') {
    const carries = codecOf(name, options);
    if (lines && carries === 'raw')
      return new Error(`channel '${name}' carries raw bytes, not lines: leave out --lines (use --lines on both sides or on neither)`);
    if (!lines && carries === 'msgpack')
      return new Error(`channel '${name}' carries messages, not raw bytes: add --lines (use --lines on both sides or on neither)`);
  }
  if (e.code === 'ERR_CHANNEL_EXISTS')
    return new Error(`channel '${name}' already exists: leave out --create to use it, or remove it with 'shmchan rm ${name}'`);
  return error;
}

function codecOf(name: string, options: StreamOptions): string | undefined {
  try {
    return inspect(name, 0, options.backend === 'sysv' ? { key: options.key as number | undefined } : undefined).codec;
  } catch {
    return undefined;
  }
}

/** send and recv: the one positional NAME, the stream options, the pipeline, and
 * their errors as advice for this CLI. */
async function runPipe(
  values: Values,
  positionals: string[],
  build: (name: string, options: StreamOptions, lines: boolean) => ChannelPipeline,
): Promise<number> {
  expectPositionals(positionals, 1, 'NAME');
  const [name] = positionals;
  const lines = values.lines === true;
  const options = channelStreamOptions(values);
  try {
    await runChannelPipeline(() => build(name, options, lines));
  } catch (error) {
    // a reader of our stdout that stops early (| head) is not an error
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') return 0;
    throw streamError(error, normalizeName(name), lines, options);
  }
  return 0;
}

const sendRecvOptionsHelp = (side: 'send' | 'recv') => `  --create          create the channel; exactly one of send and recv does, and
                    the other waits for it to appear
  --capacity SIZE   with --create: ring size in bytes, e.g. 65536, 64K, 16M
                    (default 1M)
  --lines           one message per line (without its newline) as a msgpack
                    string, the way Channel programs send and receive strings;
                    ${side === 'send' ? 'a last line without a newline is a message too' : 'a string prints as is, any other value as one line of JSON'}
  --timeout MS      without --create: how long to wait for the channel to
                    appear (default: as long as it takes)
${sysvOptionsHelp(20)}
  -h, --help        show this help`;

export const send: Command = {
  synopsis: 'send NAME [--create] [--lines]     stdin -> channel (bytes; or one message per line), end at EOF',
  help: `usage: shmchan send NAME [--create [--capacity SIZE]] [--lines] [--timeout MS] [--sysv | --key KEY]

Copies stdin into the channel, then ends the channel's stream at EOF. Without
--lines it sends raw bytes (what createReadStream() and 'shmchan recv' read).

${sendRecvOptionsHelp('send')}

When the ring is full, send waits for the receiver. What it sent before the
receiver arrives stays in the channel, and 'shmchan recv' removes the channel
once it has read the end. If the receiver stops early, send fails (exit 1).
`,
  options: streamOptions,
  run: (values, positionals) =>
    runPipe(values, positionals, (name, options, lines) => {
      const channel = lines ? createMessageWriteStream(name, options) : createWriteStream(name, options);
      return { channel, stages: lines ? [process.stdin, splitLines(), channel] : [process.stdin, channel] };
    }),
};

export const recv: Command = {
  synopsis: 'recv NAME [--create] [--lines]     channel -> stdout until end of stream',
  help: `usage: shmchan recv NAME [--create [--capacity SIZE]] [--lines] [--timeout MS] [--sysv | --key KEY]

Copies the channel's messages to stdout until the end of the stream, then
removes the channel. Without --lines it writes the raw bytes of each message
(what createWriteStream() and 'shmchan send' write).

${sendRecvOptionsHelp('recv')}

If the sender goes away without ending the stream (it died, or was stopped),
recv writes what the sender had sent and fails (exit 1).
`,
  options: streamOptions,
  run: (values, positionals) =>
    runPipe(values, positionals, (name, options, lines) => {
      const channel = lines ? createMessageReadStream(name, { ...options, highWaterMark: 1024 }) : createReadStream(name, options);
      return { channel, stages: lines ? [channel, formatLines(), process.stdout] : [channel, process.stdout] };
    }),
};
