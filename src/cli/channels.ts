// `shmchan ls`, `stat` and `rm`: the channels on this host, looked at and
// removed without joining them.
import { Channel } from '../core/channel';
import type { ShmChanError } from '../core/errors';
import { normalizeName } from '../core/options';
import { removeStale as removeStaleChannel } from '../core/segment';
import { inspect, listDetails, list, posixNameLooksLikeChannel, type ChannelDetails, type ChannelInfo } from '../list';
import { UsageError, expectPositionals, formatBytes, oneLine, out, table, type Command } from './command';

export const ls: Command = {
  synopsis: 'ls [--json]                        every channel: name, backend, mode, size, used, producers, consumers, stale',
  help: `usage: shmchan ls [--json]

Lists every shmchan channel on this host, without joining any of them.
Segments that are not shmchan's are left out.

  --json       print a JSON array of { name, backend, mode, capacity, used,
               producers, consumers, consumerPid, creatorPid, permissions, stale }
  -h, --help   show this help

A channel is stale when no live process has it open (one that only opened it,
without sending or receiving, counts). 'shmchan rm --stale' removes those.
`,
  options: { json: { type: 'boolean' } },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    const channels: ChannelInfo[] = list();
    if (values.json) {
      out(`${JSON.stringify(channels, null, 2)}\n`);
      return 0;
    }
    const rows = [['NAME', 'BACKEND', 'MODE', 'SIZE', 'USED', 'PRODUCERS', 'CONSUMERS', 'CONSUMER', 'STALE']];
    for (const c of channels)
      rows.push([
        c.name,
        c.backend,
        c.mode,
        formatBytes(c.capacity),
        formatBytes(c.used),
        String(c.producers),
        String(c.consumers),
        c.consumerPid === null ? '-' : String(c.consumerPid),
        c.stale ? 'yes' : 'no',
      ]);
    out(table(rows));
    return 0;
  },
};

export const stat: Command = {
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
      ['consumers', String(c.consumers)],
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

export const rm: Command = {
  synopsis: 'rm NAME... | rm --stale [NAME...]  remove channels (only stale ones with --stale)',
  help: `usage: shmchan rm NAME...
       shmchan rm --stale [NAME...]

Removes channels' names. Processes that have a channel open keep using it; the
memory is freed when the last one closes it.

  --stale      remove only channels that no live process has open (stale ones):
               all of them, or those of the NAMEs that are stale. Prints each
               name it removes.
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
    // removed under a lock that keeps openers out, if still stale then
    if (removeStaleChannel({ channel: channel.name, key: channel.key }, true) === 'removed') out(`removed ${channel.name}\n`);
  }
  return Promise.resolve(0);
}
