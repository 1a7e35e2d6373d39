// `shmchan bridge NAME --to|--from nats://HOST:PORT/SUBJECT`: runs one bridge
// until it is stopped (SIGINT, SIGTERM) or the channel's stream ends, printing
// a line of counters every few seconds.
import type { Bridge, BridgeChannelOptions, BridgeStats } from '../nats/bridge';
import { UsageError, formatBytes, type Command } from './command';

const help = `usage: shmchan bridge NAME --to nats://HOST:PORT/SUBJECT [options]
       shmchan bridge NAME --from nats://HOST:PORT/SUBJECT [options]

Connects the local channel NAME to a NATS subject, so that channels on different
hosts exchange messages through NATS. --to receives from the channel and publishes;
--from subscribes and sends into the channel. The channel is created if it does not
exist (and never removed). Messages cross as their encoded bytes.

JetStream (the default) stores every message and delivers it exactly once, in
order, across restarts of the bridges and of the server; --core uses plain NATS
publish/subscribe instead: faster, at most once.

options:
  --to URL              channel -> NATS
  --from URL            NATS -> channel (an spsc channel whose only producer is the bridge)
  --core                core NATS: at most once (default JetStream: exactly once)
  --stream NAME         JetStream stream (default: the one storing the subject, else SHMCHAN_<subject>)
  --durable NAME        --from: the durable consumer (default shmchan-<NAME>)
  --capacity BYTES      ring size if the bridge creates the channel (default 1 MiB)
  --mode MODE           the mode if the bridge creates the channel: spsc (default),
                        mpsc, mpmc or broadcast (--from: only with --core, for a
                        JetStream --from bridge needs spsc); --mpsc is --mode mpsc
  --overflow POLICY     broadcast: block (default) or overwrite, if it creates it
  --max-consumers N     mpmc, broadcast: consumer slots, if it creates it (default 16)
  --interval SECONDS    how often to print the counters (default 5; 0 never)
  -h, --help            show this help

URL: nats://[USER:PASSWORD@]HOST[:PORT]/SUBJECT (port 4222 by default). The subject
of --from may hold wildcards (orders.>).
Stops cleanly on SIGINT or SIGTERM (exit 0): the message in hand is finished and
acknowledged, nothing is half sent. Exits 0 after forwarding the end of the stream.
`;

interface BridgeUrl {
  servers: string;
  subject: string;
  user?: string;
  pass?: string;
}

function parseNatsUrl(text: string): BridgeUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`not a URL: ${text} (expected nats://HOST:PORT/SUBJECT)`);
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:')
    throw new UsageError(`${text}: the URL must start with nats:// (or tls://)`);
  const subject = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (subject === '' || /\s|\//.test(subject)) throw new UsageError(`${text}: name a subject after the host, e.g. nats://127.0.0.1:4222/orders`);
  const servers = `${url.protocol}//${url.hostname}:${url.port || '4222'}`;
  return {
    servers,
    subject,
    ...(url.username !== '' ? { user: decodeURIComponent(url.username) } : {}),
    ...(url.password !== '' ? { pass: decodeURIComponent(url.password) } : {}),
  };
}

function countersLine(label: string, stats: BridgeStats, previous: BridgeStats | undefined, seconds: number): string {
  const rate = previous === undefined || seconds <= 0 ? '' : ` (${Math.round((stats.messages - previous.messages) / seconds)}/s)`;
  const extra = [
    stats.connected ? 'connected' : 'disconnected',
    ...(stats.reconnects > 0 ? [`${stats.reconnects} reconnects`] : []),
    ...(stats.dropped > 0 ? [`${stats.dropped} dropped`] : []),
    ...(stats.lost > 0 ? [`${stats.lost} lost`] : []),
  ].join(', ');
  return `${label}: ${stats.messages} messages${rate}, ${formatBytes(stats.bytes)}, lag ${stats.lag}, ${extra}\n`;
}

const options = {
  to: { type: 'string' },
  from: { type: 'string' },
  core: { type: 'boolean' },
  stream: { type: 'string' },
  durable: { type: 'string' },
  capacity: { type: 'string' },
  mpsc: { type: 'boolean' },
  mode: { type: 'string' },
  overflow: { type: 'string' },
  'max-consumers': { type: 'string' },
  interval: { type: 'string' },
} as const;

type BridgeValues = { [K in keyof typeof options]?: (typeof options)[K]['type'] extends 'string' ? string : boolean };

export const bridge: Command = {
  synopsis: 'bridge NAME --to|--from nats://HOST:PORT/SUBJECT   connect a channel to a NATS subject (shmchan/nats)',
  help,
  options,
  run: (values, positionals) => runBridge(values as BridgeValues, positionals),
};

const modes = ['spsc', 'mpsc', 'mpmc', 'broadcast'] as const;

/** The options of a channel the bridge creates: --mode (or --mpsc), --overflow, --max-consumers. */
function channelOptions(values: BridgeValues): BridgeChannelOptions {
  if (values.mpsc && values.mode !== undefined && values.mode !== 'mpsc') throw new UsageError(`--mpsc and --mode ${values.mode} contradict each other`);
  const mode = values.mpsc ? 'mpsc' : values.mode;
  if (mode !== undefined && !(modes as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${modes.join(', ')}, got ${mode}`);
  const fanOut = mode === 'mpmc' || mode === 'broadcast';
  if (values.overflow !== undefined && mode !== 'broadcast') throw new UsageError('--overflow goes with --mode broadcast');
  if (values.overflow !== undefined && values.overflow !== 'block' && values.overflow !== 'overwrite')
    throw new UsageError(`--overflow must be block or overwrite, got ${values.overflow}`);
  const maxConsumers = values['max-consumers'] === undefined ? undefined : Number(values['max-consumers']);
  if (maxConsumers !== undefined && !fanOut) throw new UsageError('--max-consumers goes with --mode mpmc or broadcast');
  if (maxConsumers !== undefined && !Number.isInteger(maxConsumers)) throw new UsageError(`--max-consumers must be a whole number, got ${values['max-consumers']}`);
  return {
    ...(mode !== undefined ? { mode: mode as BridgeChannelOptions['mode'] } : {}),
    ...(values.overflow !== undefined ? { overflow: values.overflow as 'block' | 'overwrite' } : {}),
    ...(maxConsumers !== undefined ? { maxConsumers } : {}),
  };
}

/** Runs the command on parsed arguments; resolves with the exit status. */
async function runBridge(values: BridgeValues, positionals: string[]): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('name one channel');
  if ((values.to === undefined) === (values.from === undefined)) throw new UsageError('give exactly one of --to URL and --from URL');
  const url = parseNatsUrl((values.to ?? values.from)!);
  const interval = values.interval === undefined ? 5 : Number(values.interval);
  if (!Number.isFinite(interval) || interval < 0) throw new UsageError(`--interval must be a number of seconds, got ${values.interval}`);
  let capacity: number | undefined;
  if (values.capacity !== undefined) {
    capacity = Number(values.capacity);
    if (!Number.isInteger(capacity) || capacity < 1) throw new UsageError(`--capacity must be a number of bytes, got ${values.capacity}`);
  }
  const created = channelOptions(values);
  if ((created.mode ?? 'spsc') !== 'spsc' && values.from !== undefined && !values.core)
    throw new UsageError(`--mode ${created.mode} goes with --to (or --core): a JetStream --from bridge needs an spsc channel`);
  if (values.durable !== undefined && values.from === undefined) throw new UsageError('--durable goes with --from');

  // loaded here, so that the rest of the CLI never loads the NATS client
  const { bridgeFromNats, bridgeToNats } = require('../nats') as typeof import('../nats');
  const name = positionals[0];
  const direction = values.to !== undefined ? 'to' : 'from';
  const options = {
    servers: url.servers,
    subject: url.subject,
    mode: values.core ? ('core' as const) : ('jetstream' as const),
    ...(values.stream !== undefined ? { stream: values.stream } : {}),
    connectOptions: { ...(url.user !== undefined ? { user: url.user } : {}), ...(url.pass !== undefined ? { pass: url.pass } : {}) },
    channelOptions: { ...(capacity !== undefined ? { capacity } : {}), ...created },
    onEvent: (event: { type: string; message: string }) => process.stderr.write(`shmchan bridge: ${event.message}\n`),
  };
  const target = `${url.servers}/${url.subject}`;
  const label = direction === 'to' ? `${name} -> ${target}` : `${target} -> ${name}`;

  let stopRequested = false;
  let bridge: Bridge | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      process.stderr.write(`shmchan bridge: ${signal} again, exiting without finishing\n`);
      process.exit(1);
    }
    stopRequested = true;
    process.stderr.write(`shmchan bridge: ${signal}, stopping\n`);
    void bridge?.stop().catch(() => {});
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let timer: NodeJS.Timeout | undefined;
  try {
    const running =
      direction === 'to'
        ? await bridgeToNats(name, options)
        : await bridgeFromNats({ ...options, ...(values.durable !== undefined ? { durable: values.durable } : {}) }, name);
    bridge = running;
    process.stdout.write(`${label} [${running.mode}]: bridging (pid ${process.pid})\n`);
    if (stopRequested) void running.stop().catch(() => {});
    let previous: BridgeStats | undefined;
    let previousAt = performance.now();
    if (interval > 0)
      timer = setInterval(() => {
        const now = performance.now();
        const stats = running.stats();
        process.stdout.write(countersLine(label, stats, previous, (now - previousAt) / 1000));
        previous = stats;
        previousAt = now;
      }, interval * 1000);
    await running.done;
    process.stdout.write(countersLine(`${label} stopped`, running.stats(), undefined, 0));
    return 0;
  } finally {
    if (timer !== undefined) clearInterval(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
