// What a channel's lifecycle tells the outside: node:diagnostics_channel events
// for tracing and metrics, and NODE_DEBUG=shmchan lines on stderr. The channel
// code calls one function of this file where each event happens; nothing here
// changes what the channel does, and an event nobody listens to costs a check.
import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { Backend, Mode } from './options';

/** What every event publishes. `mode` is undefined for an open that failed
 * before the channel's header was read. */
export interface ChannelEvent {
  name: string;
  backend: Backend;
  mode: Mode | undefined;
}

/** What `shmchan:channel:error` publishes. */
export interface ChannelErrorEvent extends ChannelEvent {
  error: unknown;
}

const events = {
  create: diagnosticsChannel.channel('shmchan:channel:create'),
  open: diagnosticsChannel.channel('shmchan:channel:open'),
  close: diagnosticsChannel.channel('shmchan:channel:close'),
  error: diagnosticsChannel.channel('shmchan:channel:error'),
};

/** Lines to stderr when NODE_DEBUG includes shmchan; `debug.enabled` is read once. */
export const debug = debuglog('shmchan');

function eventOf(channel: ChannelEvent): ChannelEvent {
  return { name: channel.name, backend: channel.backend, mode: channel.mode };
}

/** A handle that created its channel; answers the handle. */
export function created<C extends ChannelEvent>(channel: C): C {
  debug('create %s (%s, %s)', channel.name, channel.backend, channel.mode);
  if (events.create.hasSubscribers) events.create.publish(eventOf(channel));
  return channel;
}

/** A handle that opened an existing channel (`how`: Channel.open or Channel.connect); answers the handle. */
export function opened<C extends ChannelEvent>(channel: C, how: 'open' | 'connect'): C {
  debug('%s %s (%s, %s)', how, channel.name, channel.backend, channel.mode);
  if (events.open.hasSubscribers) events.open.publish(eventOf(channel));
  return channel;
}

export function closed(channel: ChannelEvent): void {
  debug('close %s', channel.name);
  if (events.close.hasSubscribers) events.close.publish(eventOf(channel));
}

/** Errors already told: one passed up through several layers is told once. */
const told = new WeakSet<object>();

/** A failure of a channel or of creating or opening one; answers the error, to be thrown.
 * Timeouts of send and receive, ERR_CLOSED and bad arguments never come here. */
export function failed<E>(channel: ChannelEvent, error: E): E {
  // the end of the stream is what a producer racing end() meets: no failure
  if ((error as { code?: string } | undefined)?.code === 'ERR_ENDED') return error;
  if (typeof error === 'object' && error !== null) {
    if (told.has(error)) return error;
    told.add(error);
  }
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  debug('error %s: %s %s', channel.name, code, message);
  if (events.error.hasSubscribers) events.error.publish({ ...eventOf(channel), error });
  return error;
}

/** A role this handle now holds; `takenOver`: from a holder that died. */
export function roleClaimed(channel: ChannelEvent, role: 'producer' | 'consumer', takenOver: boolean): void {
  debug('%s role %s %s', role, takenOver ? 'taken over (its holder died) on' : 'claimed on', channel.name);
}

/** A stale channel was removed: by create, to replace it, or by rm --stale. */
export function staleRemoved(name: string, unread: number): void {
  debug('removed stale channel %s (%d unread messages)', name, unread);
}
