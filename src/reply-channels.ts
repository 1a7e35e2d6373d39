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
import { removeStaleReplyChannels } from './service-wire';

const debug = debuglog('shmchan');

/** How often a worker looks for clients that are gone. */
export const SWEEP_MS = 1000;

export class ReplyChannels {
  private readonly open = new Map<string, Channel<unknown>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly service: string,
    private readonly backend: Backend,
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** Sends a reply; a client that is gone (or a channel that is no reply channel) drops it. */
  send(replyTo: string, message: unknown[]): void {
    const channel = this.channel(replyTo);
    if (channel === undefined) return;
    if (channel.trySend(message)) return;
    channel.send(message).catch((error: { code?: string }) => {
      debug('reply to %s dropped: %s', replyTo, error?.code);
      if (error?.code === 'ERR_PEER_GONE') this.forget(replyTo);
    });
  }

  private channel(replyTo: string): Channel<unknown> | undefined {
    const cached = this.open.get(replyTo);
    if (cached !== undefined) return cached;
    let channel: Channel<unknown>;
    try {
      channel = Channel.open(replyTo, { backend: this.backend, timeout: 0 });
    } catch (error) {
      debug('reply channel %s cannot be opened: %s', replyTo, (error as { code?: string }).code);
      return undefined;
    }
    // a hostile request could name some other channel under the prefix: write only to reply channels
    if (channel.mode !== 'mpsc') {
      channel.close();
      return undefined;
    }
    this.open.set(replyTo, channel);
    return channel;
  }

  /** Closes the handle on a client that is gone and removes its channel if nobody else has it open. */
  private forget(replyTo: string): void {
    this.open.get(replyTo)?.close();
    this.open.delete(replyTo);
    try {
      removeStale({ channel: replyTo, key: this.backend === 'sysv' ? native.sysvKeyOfName(replyTo) : undefined }, true);
    } catch {
      // removed meanwhile
    }
  }

  /** Whether the client of a reply channel is gone (it died or closed: nobody holds the
   * consumer role, or the channel cannot be opened), forgetting it if so. A system call or two. */
  clientGone(replyTo: string): boolean {
    const channel = this.channel(replyTo);
    if (channel === undefined) return true;
    if (hasConsumer(channel)) return false;
    this.forget(replyTo);
    return true;
  }

  /** Forgets clients whose consumer role is no longer held (they died or closed), then
   * removes the stale reply channels of clients this worker never answered. */
  sweep(): void {
    for (const [name, channel] of this.open) if (!hasConsumer(channel)) this.forget(name);
    removeStaleReplyChannels(this.service, this.backend, new Set(this.open.keys()));
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
