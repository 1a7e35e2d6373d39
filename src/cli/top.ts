// `shmchan top`: what moves through every channel on this host, both backends.
// Two looks at the counters an interval apart give the rates. It reads headers
// through the listing (src/list.ts): it joins no channel, takes no role and
// writes nothing into any segment.
import { listDetails, type ChannelDetails } from '../list';
import { UsageError, expectPositionals, formatBytes, out, table, type Command } from './command';

/** One channel over one interval, as --json prints it. */
export interface TopRow {
  name: string;
  backend: ChannelDetails['backend'];
  key?: number;
  mode: ChannelDetails['mode'];
  messagesInPerSecond: number;
  messagesOutPerSecond: number;
  bytesInPerSecond: number;
  bytesOutPerSecond: number;
  /** Bytes of the ring in use, in percent of its capacity. */
  fillPercent: number;
  producers: number;
  consumers: number;
  /** Messages sent and not yet received. */
  lag: number;
  stale: boolean;
}

/** A channel is the same one in two looks only if it was created at the same time:
 * a name removed and created anew starts its counters again. */
const identity = (c: ChannelDetails) => `${c.backend}\0${c.key ?? ''}\0${c.name}\0${c.createdAt.getTime()}`;

function rows(before: Map<string, ChannelDetails>, now: ChannelDetails[], seconds: number): TopRow[] {
  const rate = (later: number, earlier: number | undefined) => Math.max(0, later - (earlier ?? later)) / seconds;
  return now
    .map((c) => {
      const was = before.get(identity(c));
      const row: TopRow = {
        name: c.name,
        backend: c.backend,
        mode: c.mode,
        messagesInPerSecond: rate(c.messagesSent, was?.messagesSent),
        messagesOutPerSecond: rate(c.messagesReceived, was?.messagesReceived),
        bytesInPerSecond: rate(c.bytesSent, was?.bytesSent),
        bytesOutPerSecond: rate(c.bytesReceived, was?.bytesReceived),
        fillPercent: (100 * c.used) / c.capacity,
        producers: c.producers,
        consumers: c.consumers,
        lag: Math.max(0, c.messagesSent - c.messagesReceived),
        stale: c.stale,
      };
      if (c.key !== undefined) row.key = c.key;
      return row;
    })
    .sort(
      (a, b) =>
        b.messagesInPerSecond + b.messagesOutPerSecond - (a.messagesInPerSecond + a.messagesOutPerSecond) ||
        b.bytesInPerSecond + b.bytesOutPerSecond - (a.bytesInPerSecond + a.bytesOutPerSecond) ||
        (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
}

function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(1)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

function render(found: TopRow[], intervalMs: number): string {
  const lines = [['NAME', 'BACKEND', 'MODE', 'MSG/S IN', 'MSG/S OUT', 'BYTES/S IN', 'BYTES/S OUT', 'FILL', 'PRODUCERS', 'CONSUMERS', 'LAG', 'STALE']];
  for (const r of found)
    lines.push([
      r.name,
      r.backend,
      r.mode,
      formatRate(r.messagesInPerSecond),
      formatRate(r.messagesOutPerSecond),
      formatBytes(Math.round(r.bytesInPerSecond)),
      formatBytes(Math.round(r.bytesOutPerSecond)),
      `${r.fillPercent.toFixed(1)}%`,
      String(r.producers),
      String(r.consumers),
      String(r.lag),
      r.stale ? 'yes' : 'no',
    ]);
  const title = `shmchan top: ${found.length} channel${found.length === 1 ? '' : 's'}, rates over ${intervalMs} ms, at ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`;
  return `${title}\n\n${table(lines)}`;
}

function intervalOption(text: string | boolean | undefined): number {
  if (text === undefined) return 1000;
  const ms = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text) || ms < 10 || ms > 3_600_000)
    throw new UsageError(`--interval must be a whole number of milliseconds from 10 to 3600000, got '${text}'`);
  return ms;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const top: Command = {
  synopsis: 'top [--once] [--json] [--interval MS]   live view of every channel: rates, fill, peers, stale',
  help: `usage: shmchan top [--once] [--json] [--interval MS]

A live view of every channel on this host, both backends: messages and bytes
per second into each channel (sent) and out of it (received), how full its ring
is, its producers and consumers, its lag (messages sent and not yet received)
and whether it is stale. Busiest first; refreshed in place every interval until
Ctrl-C. It only reads the channels' counters: it takes no role and writes nothing.

  --interval MS   milliseconds between refreshes, and the span of each rate
                  (default 1000)
  --once          print one view, one interval after starting, and exit
  --json          print each view as one line of JSON: an array of { name,
                  backend, key?, mode, messagesInPerSecond, messagesOutPerSecond,
                  bytesInPerSecond, bytesOutPerSecond, fillPercent, producers,
                  consumers, lag, stale }
  -h, --help      show this help
`,
  options: { once: { type: 'boolean' }, json: { type: 'boolean' }, interval: { type: 'string' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    const intervalMs = intervalOption(values.interval);
    // in place on a terminal: the cursor home and the screen below it cleared
    const inPlace = !values.json && !values.once && process.stdout.isTTY === true;
    // a reader of stdout that stops (| head) ends top, as it ends any filter
    let readerGone = false;
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      readerGone = true;
    });
    let before = new Map(listDetails().map((c) => [identity(c), c]));
    let then = process.hrtime.bigint();
    for (;;) {
      await sleep(intervalMs);
      if (readerGone) return 0;
      const current = listDetails();
      const now = process.hrtime.bigint();
      const found = rows(before, current, Number(now - then) / 1e9);
      if (values.json) out(`${JSON.stringify(found)}\n`);
      else out(`${inPlace ? '\x1b[H\x1b[J' : ''}${render(found, intervalMs)}${inPlace || values.once ? '' : '\n'}`);
      if (values.once) return 0;
      before = new Map(current.map((c) => [identity(c), c]));
      then = now;
    }
  },
};
