// A worker's handles on its clients' reply channels: opened at the first reply
// to a client, kept for the next ones, and closed (and the channel removed once
// nobody has it open) when the client is gone. A reply never blocks the worker
// on a dead client: a full channel whose consumer died fails with ERR_PEER_GONE
// within about a second, and the sweep notices a dead client's channel even when
// it never fills.
import { debuglog } from 'node:util';
import { Channel } from './core/channel';
import type { Backend } from './core/options';
import { removeStale } from './core/segment';
import { native } from './core/binding';
import { removeStaleReplyChannels, replyChannelName, replyPrefix } from './service-wire';

const debug = debuglog('shmchan');

/** How often a worker looks for clients that are gone. */
export const SWEEP_MS = 1000;

export class ReplyChannels {
  /** By client number. */
  private readonly open = new Map<number, Channel<unknown>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly prefix: string;

  constructor(
    private readonly service: string,
    private readonly backend: Backend,
  ) {
    this.prefix = replyPrefix(service);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** Sends a reply to client number `client`; a client that is gone (or a channel that is no reply channel) drops it. */
  send(client: number, message: unknown[]): void {
    const channel = this.channel(client);
    if (channel === undefined) return;
    if (channel.trySend(message)) return;
    channel.send(message).catch((error: { code?: string }) => {
      debug('reply to client %d of %s dropped: %s', client, this.service, error?.code);
      if (error?.code === 'ERR_PEER_GONE') this.forget(client);
    });
  }

  private channel(client: number): Channel<unknown> | undefined {
    const cached = this.open.get(client);
    if (cached !== undefined) return cached;
    const name = replyChannelName(this.prefix, client);
    let channel: Channel<unknown>;
    try {
      channel = Channel.open(name, { backend: this.backend, timeout: 0 });
    } catch (error) {
      debug('reply channel %s cannot be opened: %s', name, (error as { code?: string }).code);
      return undefined;
    }
    // a hostile request could name some other channel under the prefix: write only to reply channels
    if (channel.mode !== 'mpsc') {
      channel.close();
      return undefined;
    }
    this.open.set(client, channel);
    return channel;
  }

  /** Closes the handle on a client that is gone and removes its channel if nobody else has it open. */
  private forget(client: number): void {
    this.open.get(client)?.close();
    this.open.delete(client);
    const name = replyChannelName(this.prefix, client);
    try {
      removeStale({ channel: name, key: this.backend === 'sysv' ? native.sysvKeyOfName(name) : undefined }, true);
    } catch {
      // removed meanwhile
    }
  }

  /** Whether a client is gone (it died or closed: nobody holds its reply channel's
   * consumer role, or the channel cannot be opened), forgetting it if so. A system call or two. */
  clientGone(client: number): boolean {
    const channel = this.channel(client);
    if (channel === undefined) return true;
    if (hasConsumer(channel)) return false;
    this.forget(client);
    return true;
  }

  /** Forgets clients whose consumer role is no longer held (they died or closed), then
   * removes the stale reply channels of clients this worker never answered. */
  sweep(): void {
    for (const [client, channel] of this.open) if (!hasConsumer(channel)) this.forget(client);
    removeStaleReplyChannels(this.service, this.backend, new Set([...this.open.values()].map((channel) => channel.name)));
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const channel of this.open.values()) channel.close();
    this.open.clear();
  }
}

/** A client holds its reply channel's consumer role from connect to close or death. */
function hasConsumer(channel: Channel<unknown>): boolean {
  try {
    return channel.stats().consumers > 0;
  } catch {
    return false;
  }
}
