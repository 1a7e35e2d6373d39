// The shmchan command line. The first argument names the command; the command
// parses the rest with node:util parseArgs in strict mode. Exit status: 0 on
// success, 1 on a runtime error (one line on stderr), 2 on bad usage.
import path from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Channel } from '../core/channel';
import { normalizeName } from '../core/options';
import { runDemo } from './demo';
import { bridgeHelp, bridgeOptions, runBridge } from './bridge';
import { ShmChanError } from '../core/errors';
import { inspect, listDetails, list, posixNameLooksLikeChannel, type ChannelDetails, type ChannelInfo } from '../list';
import {
  NIL_MESSAGE,
  createMessageReadStream,
  createMessageWriteStream,
  createReadStream,
  createWriteStream,
  type StreamOptions,
} from '../streams';

/** Bad arguments: exit status 2. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

interface Command {
  /** The line in the overview. */
  synopsis: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number>;
}

const out = (text: string) => process.stdout.write(text);

// ---- ls, stat, rm ----

function formatBytes(n: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const)
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  return `${n} B`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

function expectPositionals(positionals: string[], count: number, what: string): void {
  if (positionals.length < count) throw new UsageError(`missing ${what}`);
  if (positionals.length > count) throw new UsageError(`unexpected argument '${positionals[count]}'`);
}

const ls: Command = {
  synopsis: 'ls [--json]                        every channel: name, backend, mode, size, used, producers, consumer, stale',
  help: `usage: shmchan ls [--json]

Lists every shmchan channel on this host, without joining any of them.
Segments that are not shmchan's are left out.

  --json       print a JSON array of { name, backend, mode, capacity, used,
               producers, consumerPid, creatorPid, permissions, stale }
  -h, --help   show this help

A channel is stale when no live process is attached to it: no live producer,
consumer or creator. 'shmchan rm --stale' removes those.
`,
  options: { json: { type: 'boolean' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    const channels: ChannelInfo[] = list();
    if (values.json) {
      out(`${JSON.stringify(channels, null, 2)}\n`);
      return 0;
    }
    const rows = [['NAME', 'BACKEND', 'MODE', 'SIZE', 'USED', 'PRODUCERS', 'CONSUMER', 'STALE']];
    for (const c of channels)
      rows.push([
        c.name,
        c.backend,
        c.mode,
        formatBytes(c.capacity),
        formatBytes(c.used),
        String(c.producers),
        c.consumerPid === null ? '-' : String(c.consumerPid),
        c.stale ? 'yes' : 'no',
      ]);
    out(table(rows));
    return 0;
  },
};

const stat: Command = {
  synopsis: "stat NAME [--json]                 one channel's header and counters",
  help: `usage: shmchan stat NAME [--json]

Shows one channel's header (backend, mode, codec, sizes, permissions, creation)
and its counters, without joining it.

  --json       print one JSON object: the fields of 'shmchan ls --json' and
               maxMessageSize, codec, createdAt, messagesSent, messagesReceived,
               bytesSent, bytesReceived, ended
  -h, --help   show this help
`,
  options: { json: { type: 'boolean' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 1, 'NAME');
    let c: ChannelDetails;
    try {
      c = inspect(positionals[0]);
    } catch (error) {
      if ((error as ShmChanError).code !== 'ERR_CHANNEL_NOT_FOUND') throw error;
      throw new Error(`channel '${normalizeName(positionals[0])}' does not exist`);
    }
    if (values.json) {
      out(`${JSON.stringify(c, null, 2)}\n`);
      return 0;
    }
    const pid = (p: number | null) => (p === null ? '-' : String(p));
    const rows: [string, string][] = [
      ['name', c.name],
      ['backend', c.key === undefined ? c.backend : `${c.backend} (key 0x${c.key.toString(16)})`],
      ['mode', c.mode],
      ['codec', c.codec],
      ['capacity', `${formatBytes(c.capacity)} (${c.capacity} bytes)`],
      ['max message', `${formatBytes(c.maxMessageSize)} (${c.maxMessageSize} bytes)`],
      ['used', `${formatBytes(c.used)} (${c.used} bytes)`],
      ['permissions', `0${c.permissions.toString(8).padStart(3, '0')}`],
      ['created', c.createdAt.toISOString()],
      ['creator pid', pid(c.creatorPid)],
      ['producers', String(c.producers)],
      ['consumer pid', pid(c.consumerPid)],
      ['messages sent', String(c.messagesSent)],
      ['messages received', String(c.messagesReceived)],
      ['bytes sent', String(c.bytesSent)],
      ['bytes received', String(c.bytesReceived)],
      ['ended', c.ended ? 'yes' : 'no'],
      ['stale', c.stale ? 'yes' : 'no'],
    ];
    const width = Math.max(...rows.map(([key]) => key.length));
    out(rows.map(([key, value]) => `${key.padEnd(width)}  ${value}\n`).join(''));
    return 0;
  },
};

const rm: Command = {
  synopsis: 'rm NAME... | rm --stale [NAME...]  remove channels (only stale ones with --stale)',
  help: `usage: shmchan rm NAME...
       shmchan rm --stale [NAME...]

Removes channels' names. Processes that have a channel open keep using it; the
memory is freed when the last one closes it.

  --stale      remove only channels that no live process is attached to (no live
               producer, consumer or creator): all of them, or those of the NAMEs
               that are stale. Prints each name it removes.
  -h, --help   show this help

Without --stale, each NAME must be a shmchan channel; a missing one is an error
(exit status 1) and the others are still removed.
`,
  options: { stale: { type: 'boolean' } },
  run: async (values, positionals) => {
    if (values.stale) return removeStale(positionals);
    if (positionals.length === 0) throw new UsageError('missing NAME (or --stale)');
    let status = 0;
    for (const channel of positionals.map(normalizeName)) {
      try {
        if (!posixNameLooksLikeChannel(channel)) throw new Error(`'${channel}' is not a shmchan channel; not removed`);
        if (!Channel.unlink(channel)) throw new Error(`channel '${channel}' does not exist`);
      } catch (error) {
        process.stderr.write(`shmchan rm: ${oneLine(error)}\n`);
        status = 1;
      }
    }
    return status;
  },
};

function removeStale(positionals: string[]): Promise<number> {
  const only = new Set(positionals.map(normalizeName));
  for (const channel of listDetails()) {
    if (!channel.stale || (only.size > 0 && !only.has(channel.name))) continue;
    try {
      // look again just before removing: a process may have attached since
      if (!inspect(channel.name, 0).stale) continue;
    } catch {
      continue;
    }
    if (Channel.unlink(channel.name, { backend: channel.backend })) out(`removed ${channel.name}\n`);
  }
  return Promise.resolve(0);
}

// ---- send, recv ----

const streamOptions = {
  create: { type: 'boolean' },
  lines: { type: 'boolean' },
  capacity: { type: 'string' },
  timeout: { type: 'string' },
} as const;

function parseSize(text: string): number {
  const match = /^(\d+)\s*([kmg]?)(i?b)?$/i.exec(text.trim());
  if (match === null) throw new UsageError(`--capacity must be a number of bytes such as 65536, 64K or 16M, got '${text}'`);
  return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase());
}

function channelStreamOptions(values: Values): StreamOptions {
  const options: StreamOptions = { create: values.create === true };
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

/** Turns the codec mismatch between --lines and bytes into advice for this CLI. */
function streamError(error: unknown, name: string, lines: boolean): unknown {
  const e = error as ShmChanError;
  if (e.code === 'ERR_INCOMPATIBLE' && /created with codec/.test(e.message))
    return new Error(
      lines
        ? `channel '${name}' carries raw bytes, not lines: leave out --lines (use --lines on both sides or on neither)`
        : `channel '${name}' carries messages, not raw bytes: add --lines (use --lines on both sides or on neither)`,
    );
  if (e.code === 'ERR_CHANNEL_EXISTS')
    return new Error(`channel '${name}' already exists: leave out --create to use it, or remove it with 'shmchan rm ${name}'`);
  return error;
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
  -h, --help        show this help`;

const send: Command = {
  synopsis: 'send NAME [--create] [--lines]     stdin -> channel (bytes; or one message per line), end at EOF',
  help: `usage: shmchan send NAME [--create [--capacity SIZE]] [--lines] [--timeout MS]

Copies stdin into the channel, then ends the channel's stream at EOF. Without
--lines it sends raw bytes (what createReadStream() and 'shmchan recv' read).

${sendRecvOptionsHelp('send')}

When the ring is full, send waits for the receiver. What it sent before the
receiver arrives stays in the channel, and 'shmchan recv' removes the channel
once it has read the end. If the receiver stops early, send fails (exit 1).
`,
  options: streamOptions,
  run: async (values, positionals) => {
    expectPositionals(positionals, 1, 'NAME');
    const [name] = positionals;
    const lines = values.lines === true;
    const options = channelStreamOptions(values);
    try {
      await runChannelPipeline(() => {
        const channel = lines ? createMessageWriteStream(name, options) : createWriteStream(name, options);
        return { channel, stages: lines ? [process.stdin, splitLines(), channel] : [process.stdin, channel] };
      });
    } catch (error) {
      throw streamError(error, normalizeName(name), lines);
    }
    return 0;
  },
};

const recv: Command = {
  synopsis: 'recv NAME [--create] [--lines]     channel -> stdout until end of stream',
  help: `usage: shmchan recv NAME [--create [--capacity SIZE]] [--lines] [--timeout MS]

Copies the channel's messages to stdout until the end of the stream, then
removes the channel. Without --lines it writes the raw bytes of each message
(what createWriteStream() and 'shmchan send' write).

${sendRecvOptionsHelp('recv')}

If the sender goes away without ending the stream (it died, or was stopped),
recv writes what the sender had sent and fails (exit 1).
`,
  options: streamOptions,
  run: async (values, positionals) => {
    expectPositionals(positionals, 1, 'NAME');
    const [name] = positionals;
    const lines = values.lines === true;
    const options = channelStreamOptions(values);
    try {
      await runChannelPipeline(() => {
        const channel = lines ? createMessageReadStream(name, { ...options, highWaterMark: 1024 }) : createReadStream(name, options);
        return { channel, stages: lines ? [channel, formatLines(), process.stdout] : [channel, process.stdout] };
      });
    } catch (error) {
      // a reader of our stdout that stops early (| head) is not an error
      if ((error as NodeJS.ErrnoException).code === 'EPIPE') return 0;
      throw streamError(error, normalizeName(name), lines);
    }
    return 0;
  },
};

// ---- demo ----

const demo: Command = {
  synopsis: 'demo                               the spooler: one consumer and several producer processes',
  help: `usage: shmchan demo

The spooler: starts one spooler process and four client processes that share
only an mpsc channel name; the spooler prints jobs in arrival order and a summary.
`,
  options: {},
  run: async (_values, positionals) => {
    expectPositionals(positionals, 0, '');
    return runDemo();
  },
};

// ---- bridge ----

const bridge: Command = {
  synopsis: 'bridge NAME --to|--from nats://HOST:PORT/SUBJECT   connect a channel to a NATS subject (shmchan/nats)',
  help: bridgeHelp,
  options: bridgeOptions,
  run: (values, positionals) => runBridge(values, positionals),
};

// ---- bench ----

/** bench/run.mjs, an ES module shipped beside dist/ (package.json "files"). */
interface BenchRunner {
  runBench(options: Values): Promise<number>;
}

const bench: Command = {
  synopsis: 'bench [--quick] [--json] [--svg FILE]  shmchan against pipe, unix socket, child_process IPC, MessagePort',
  help: `usage: shmchan bench [--quick] [--json | --markdown] [--svg FILE] [--only REGEX]

Measures shmchan (POSIX and System V, spsc and mpsc, and POSIX spsc with
records: true for objects) against a pipe (FIFO), a unix socket, child_process
IPC ('json' and 'advanced') and a worker_threads MessagePort, each trial in
fresh processes: round-trip latency, one-way and 4-producer throughput, the
wake-up of a receiver that was asleep, the CPU of a receiver parked on an empty
channel, and msgpackr alone. Prints a table per scenario with each mechanism's
ratio to the unix socket, then the speed targets (informational: a missed
target is not an error). A progress line goes to stderr.

  --quick        shorter trials and fewer message sizes: under a minute
  --json         print the results as JSON instead of tables
  --markdown     print the tables as Markdown (the README's benchmarks section)
  --svg FILE     also write a chart of round-trip p50 and throughput to FILE
  --only REGEX   run only the trials whose scenario/message/mechanism matches,
                 e.g. 'pingpong/small' or 'shmchan-posix|unix'
  -h, --help     show this help

The full run takes a few minutes. Exit status 1 if a trial failed.
`,
  options: {
    quick: { type: 'boolean' },
    json: { type: 'boolean' },
    markdown: { type: 'boolean' },
    svg: { type: 'string' },
    only: { type: 'string' },
  },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    if (values.json && values.markdown) throw new UsageError('--json and --markdown exclude each other');
    const runner = pathToFileURL(path.join(__dirname, '..', '..', 'bench', 'run.mjs')).href;
    const { runBench } = (await import(runner)) as BenchRunner;
    try {
      return await runBench(values);
    } catch (error) {
      if ((error as { usage?: boolean }).usage) throw new UsageError((error as Error).message);
      throw error;
    }
  },
};

const commands: Record<string, Command> = { ls, stat, rm, send, recv, demo, bridge, bench };

const usage = `usage: shmchan <command> [options]

commands:
${Object.values(commands)
  .map((c) => `  ${c.synopsis}`)
  .join('\n')}

'shmchan <command> --help' describes a command.
Exit status: 0 on success, 1 on a runtime error, 2 on bad usage.
`;

function oneLine(error: unknown): string {
  const { code, message } = error instanceof Error ? (error as NodeJS.ErrnoException) : { code: undefined, message: String(error) };
  // parseArgs explains '--' at length; the option is what matters here
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${/'[^']*'/.exec(message)?.[0] ?? message}`;
  return message.split('\n')[0];
}

/** Runs the CLI; resolves with the exit status (0 ok, 1 runtime error, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '-h' || name === '--help' || name === 'help') {
    out(usage);
    return 0;
  }
  if (name === undefined) {
    process.stderr.write(usage);
    return 2;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    process.stderr.write(`shmchan: unknown command '${name}' (see 'shmchan --help')\n`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      out(command.help);
      return 0;
    }
    return await command.run(values as Values, positionals);
  } catch (error) {
    const { code } = error as { code?: string };
    const usageError =
      error instanceof UsageError || code === 'ERR_INVALID_NAME' || (code !== undefined && code.startsWith('ERR_PARSE_ARGS_'));
    if (!usageError) {
      process.stderr.write(`shmchan ${name}: ${oneLine(error)}\n`);
      return 1;
    }
    process.stderr.write(`shmchan ${name}: ${oneLine(error)} (see 'shmchan ${name} --help')\n`);
    return 2;
  }
}
