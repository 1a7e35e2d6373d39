// What both bridge directions share: options, the local channel, counters,
// events, and the stop/done lifecycle.
import type { ConnectionOptions, NatsConnection } from '@nats-io/transport-node';
import { Channel } from '../core/channel';
import type { CreateOptions } from '../core/options';
import { invalidArg, type ShmChanError } from '../core/errors';
import { connectWithRetry, isJetStreamAway, pause } from './client';

/** How long stopping waits for the connection's drain before closing it. */
const DRAIN_MS = 5000;
/** A session that lasted longer than this ends a streak of JetStream not answering. */
const AWAY_STREAK_MS = 10_000;

/** 'jetstream': stored, acknowledged, exactly once; 'core': fast, at most once. */
export type NatsMode = 'jetstream' | 'core';

/** What a bridge tells `onEvent` about: things it recovers from by itself. */
export interface BridgeEvent {
  /** What happened: the connection came or went, a session was reset, the bridge waits, or a warning. */
  type: 'connected' | 'disconnected' | 'reset' | 'waiting' | 'warning';
  /** The details, for a log. */
  message: string;
}

/** What Bridge#stats() answers. */
export interface BridgeStats {
  /** Messages moved: published and acknowledged (to NATS), or sent into the channel (from NATS). */
  messages: number;
  /** Payload bytes of those messages. */
  bytes: number;
  /** Messages still to move: unconsumed in the channel (to NATS), or pending in the consumer (from NATS). */
  lag: number;
  /** Connections made after the first one. */
  reconnects: number;
  /** Core mode, from NATS: messages dropped because the channel stayed full. */
  dropped: number;
  /** From NATS: messages skipped because their sender's order key showed them already delivered. */
  repeats: number;
  /** To NATS, from a 'broadcast' channel with overflow 'overwrite': messages overwritten before the bridge read them. */
  lost: number;
  /** Whether the bridge is connected to NATS now. */
  connected: boolean;
}

/** A running bridge between a local channel and a NATS subject (bridgeToNats, bridgeFromNats). */
export interface Bridge {
  /** 'to': channel -> NATS; 'from': NATS -> channel. */
  readonly direction: 'to' | 'from';
  /** 'jetstream' or 'core'. */
  readonly mode: NatsMode;
  /** The local channel's name. */
  readonly channel: string;
  /** The NATS subject. */
  readonly subject: string;
  /** Settles when the bridge has stopped: after stop(), or after it forwarded the end of
   * the stream. Rejects with the error that stopped it otherwise. */
  readonly done: Promise<void>;
  /** The bridge's counters. */
  stats(): BridgeStats;
  /** Finishes the message in hand, acknowledges what was delivered, drains the NATS
   * connection and closes the channel. Resolves like `done`. */
  stop(): Promise<void>;
}

/** How the bridge creates a missing local channel. It never removes a channel. */
export type BridgeChannelOptions = Pick<CreateOptions, 'capacity' | 'permissions' | 'maxMessageSize' | 'maxConsumers' | 'overflow'> & {
  /** 'spsc' (default), 'mpsc', 'mpmc' or 'broadcast'; a from-bridge in JetStream mode needs 'spsc'. */
  mode?: CreateOptions['mode'];
  /** The codec recorded in the header for other openers: 'msgpack' (default) or 'raw'. */
  codec?: 'msgpack' | 'raw';
};

/** The options both bridges take. */
export interface NatsBridgeOptions {
  /** e.g. 'nats://127.0.0.1:4222' or several. */
  servers: string | string[];
  /** The NATS subject to publish to or take messages from. */
  subject: string;
  /** 'jetstream' (default): stored, acknowledged, exactly once. 'core': fast, at most once. */
  mode?: NatsMode;
  /** JetStream: the stream that stores the subject. Default: a stream whose subjects take it,
   * or a new one named SHMCHAN_<subject>. */
  stream?: string;
  /** More options for connect() of @nats-io/transport-node (user, pass, token, tls, name...). */
  connectOptions?: Record<string, unknown>;
  /** Used to create the local channel when it does not exist. */
  channelOptions?: BridgeChannelOptions;
  /** Told about disconnects, reconnects and other things the bridge recovers from. */
  onEvent?: (event: BridgeEvent) => void;
}

/** Bytes in, the same bytes out: the bridge never decodes a message. */
export const identityCodec: { encode(bytes: Buffer): Buffer; decode(bytes: Buffer): Buffer } = { encode: (bytes) => bytes, decode: (bytes) => bytes };

/** Opens the channel, creating it (unlinkOnClose false) when it does not exist. */
export function openLocalChannel(name: string, create: BridgeChannelOptions | undefined): Channel<Buffer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return Channel.open<Buffer>(name, { codec: identityCodec });
    } catch (error) {
      if ((error as ShmChanError).code !== 'ERR_CHANNEL_NOT_FOUND' || attempt > 0) throw error;
    }
    try {
      Channel.create(name, { ...create, codec: create?.codec ?? 'msgpack', unlinkOnClose: false }).close();
    } catch (error) {
      if ((error as ShmChanError).code !== 'ERR_CHANNEL_EXISTS') throw error;
    }
  }
}

export function checkBridgeOptions(options: NatsBridgeOptions): void {
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object with servers and subject');
  const servers = Array.isArray(options.servers) ? options.servers : [options.servers];
  if (servers.length === 0 || servers.some((s) => typeof s !== 'string' || s === ''))
    throw invalidArg(`servers must be a NATS URL or a list of them, e.g. 'nats://127.0.0.1:4222'`);
  if (typeof options.subject !== 'string' || !/^[^\s]+$/.test(options.subject))
    throw invalidArg(`subject must be a NATS subject such as 'orders' or 'orders.>', got ${JSON.stringify(options.subject)}`);
  if (options.mode !== undefined && options.mode !== 'jetstream' && options.mode !== 'core')
    throw invalidArg(`mode must be 'jetstream' or 'core', got ${JSON.stringify(options.mode)}`);
}

export function positiveInteger(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw invalidArg(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

export type SessionOutcome = 'stopped' | 'ended' | 'lost';

export abstract class BridgeBase implements Bridge {
  abstract readonly direction: 'to' | 'from';
  readonly mode: NatsMode;
  readonly channel: string;
  readonly subject: string;
  done!: Promise<void>;
  protected readonly stopping = new AbortController();
  /** Resolves when stop() is called. */
  protected readonly stopped = new Promise<void>((resolve) => this.stopping.signal.addEventListener('abort', () => resolve(), { once: true }));
  protected readonly counters = { messages: 0, bytes: 0, reconnects: 0, dropped: 0, repeats: 0, lost: 0 };
  protected connection: NatsConnection | undefined;
  protected readonly connectOptions: ConnectionOptions;
  private connections = 0;

  constructor(
    protected readonly local: Channel<Buffer>,
    protected readonly options: NatsBridgeOptions,
  ) {
    this.mode = options.mode ?? 'jetstream';
    this.channel = local.name;
    this.subject = options.subject;
    this.connectOptions = {
      name: `shmchan bridge ${local.name}`,
      ...options.connectOptions,
      servers: options.servers,
    };
  }

  /** The first connection: in JetStream mode the bridge makes new connections itself
   * (so nothing buffered in the client is sent out of order after a reconnect); in
   * core mode the client reconnects and buffers meanwhile. */
  firstConnectOptions(): ConnectionOptions {
    return this.mode === 'core'
      ? { ...this.connectOptions, reconnect: true, maxReconnectAttempts: -1 }
      : { ...this.connectOptions, reconnect: false };
  }

  private onReady!: () => void;
  /** Resolves once the first session is set up (stream and consumer exist). */
  readonly ready = new Promise<void>((resolve) => (this.onReady = resolve));

  /** Starts the bridge on an already open connection. */
  start(nc: NatsConnection): this {
    this.adopt(nc);
    this.done = this.run(nc).finally(() => {
      this.onReady();
      this.local.close();
    });
    this.done.catch(() => {});
    return this;
  }

  /** True once a session got ready: from then on, JetStream away is waited out. */
  private wasReady = false;

  protected markReady(): void {
    this.wasReady = true;
    this.onReady();
  }

  protected abstract lag(): number;
  /** Runs on one connection until stopped, ended, or the connection is gone ('lost'). */
  protected abstract jetStreamSession(nc: NatsConnection): Promise<SessionOutcome>;
  /** Runs until stopped or ended; the client reconnects by itself. */
  protected abstract coreSession(nc: NatsConnection): Promise<void>;
  /** Says what a lost connection leaves pending. */
  protected abstract pendingWhenLost(): string;

  private async run(first: NatsConnection): Promise<void> {
    let nc: NatsConnection | undefined = first;
    try {
      if (this.mode === 'core') {
        await this.coreSession(nc);
        return;
      }
      let awayFor = 0; // ms to pause before the next try while JetStream stays away
      for (;;) {
        const started = performance.now();
        let away = false;
        try {
          if ((await this.jetStreamSession(nc)) !== 'lost') return;
        } catch (error) {
          // Once running, JetStream away (a server shutting down or starting) is waited
          // out like a lost connection. Before the first session was ready it is an
          // error, so that a server without JetStream is reported at once.
          if (!this.wasReady || !(nc.isClosed() || isJetStreamAway(error))) throw error;
          away = !nc.isClosed();
          // a session that ran a while starts a new streak: told again, short pause first
          if (performance.now() - started > AWAY_STREAK_MS) awayFor = 0;
          if (away && awayFor === 0)
            this.event('waiting', `JetStream does not answer (${(error as Error).message}); trying again until it does (${this.pendingWhenLost()})`);
        }
        if (this.stopping.signal.aborted) return;
        if (!away) this.event('disconnected', `lost the connection to NATS; connecting again (${this.pendingWhenLost()})`);
        await nc.close();
        // JetStream away: give it 100 ms, then twice as long each time, up to 2 s
        awayFor = away ? Math.min(Math.max(2 * awayFor, 100), 2000) : 0;
        if (awayFor > 0) await pause(awayFor, this.stopping.signal);
        let failures = 0;
        nc = await connectWithRetry({ ...this.connectOptions, reconnect: false }, this.stopping.signal, (error) => {
          if (failures++ === 0) this.event('waiting', `cannot reach NATS (${error.message}); trying again until it answers`);
        });
        if (nc === undefined) return;
        this.adopt(nc);
      }
    } finally {
      if (nc !== undefined) await this.finish(nc);
    }
  }

  stats(): BridgeStats {
    return {
      ...this.counters,
      lag: this.local.closed ? 0 : this.lag(),
      connected: this.connection !== undefined && !this.connection.isClosed(),
    };
  }

  stop(): Promise<void> {
    this.stopping.abort();
    return this.done;
  }

  protected event(type: BridgeEvent['type'], message: string): void {
    this.options.onEvent?.({ type, message });
  }

  protected adopt(nc: NatsConnection): void {
    this.connection = nc;
    if (this.connections++ > 0) {
      this.counters.reconnects++;
      this.event('connected', `reconnected to ${nc.getServer()}`);
    }
  }

  /** Core mode: the client reconnects by itself; tell about it. */
  protected watchStatus(nc: NatsConnection): void {
    (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.event('disconnected', `lost the connection to ${status.server}; the client reconnects`);
        else if (status.type === 'reconnect') {
          this.counters.reconnects++;
          this.event('connected', `reconnected to ${status.server}`);
        }
      }
    })().catch(() => {}); // the status stream ends with the connection
  }

  /** Drains a connection that is still open, flushing acks and publishes. A drain
   * does not always settle when the server goes away meanwhile (the client waits for
   * the unsubscriptions' flush), so it gets DRAIN_MS and then the connection is closed. */
  private async finish(nc: NatsConnection): Promise<void> {
    if (nc.isClosed()) return;
    const gaveUp = new AbortController();
    await Promise.race([nc.drain().catch(() => {}), nc.closed(), pause(DRAIN_MS, gaveUp.signal)]);
    gaveUp.abort();
    if (!nc.isClosed()) await nc.close();
  }
}

/** A wake-up for a loop that waits on several things at once. */
export class Notifier {
  private wake: (() => void) | undefined;

  wait(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
