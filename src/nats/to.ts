// Channel -> NATS. The bridge is the channel's consumer. In JetStream mode it
// consumes a message only after JetStream has acknowledged storing it, and every
// message carries a Nats-Msg-Id that stays the same across restarts (the channel
// instance and the message's 64-bit ring position), so a message published again
// after a crash or a lost connection is dropped by JetStream's duplicate window.
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { Channel } from '../core/channel';
import {
  BridgeBase,
  Notifier,
  positiveInteger,
  type NatsBridgeOptions,
  type SessionOutcome,
} from './bridge';
import {
  JetStreamUnavailable,
  MSG_ID_HEADER,
  PipelinedPublisher,
  PublishRejected,
  endMarkerHeaders,
  ensureStream,
  natsModules,
} from './client';
import { EMPTY, ENDED, relayConsumer, type Relay } from './relay';

/** The options of bridgeToNats. */
export interface ToNatsOptions extends NatsBridgeOptions {
  /** JetStream: publishes awaiting their acknowledgement at once. Default 256. */
  window?: number;
  /** JetStream: ms without an acknowledgement after which the connection counts as
   * lost (it is made again and unacknowledged messages are published again). Default 5000. */
  ackTimeout?: number;
  /** When the channel ends, publish an end-of-stream marker (which ends the channel
   * of a receiving bridge) and stop. Default true. */
  forwardEnd?: boolean;
  /** JetStream: the duplicate window of a stream the bridge creates, in ms. Default 120000. */
  duplicateWindow?: number;
}

/** JetStream: bytes published and not yet acknowledged, at most (besides one message). */
const MAX_IN_FLIGHT_BYTES = 8 << 20;
/** Core mode waits for the server's PONG this often, so publishing cannot run far ahead. */
const CORE_FLUSH_EVERY = 1024;

/**
 * After a failed publish, unacknowledged messages are published again in a new
 * session: on a new connection ('lost'), or after JetStream came back (thrown, for
 * the bridge to wait out). A message the server refuses is an error.
 */
function endOfSession(error: Error, nc: NatsConnection): SessionOutcome {
  if (nc.isClosed()) return 'lost';
  if (error instanceof PublishRejected || error instanceof JetStreamUnavailable) throw error;
  return 'lost';
}

export class ToNatsBridge extends BridgeBase {
  readonly direction = 'to';
  private readonly relay: Relay;
  private readonly window: number;
  private readonly ackTimeout: number;
  private readonly forwardEnd: boolean;
  private readonly duplicateWindow: number;

  constructor(local: Channel<Buffer>, options: ToNatsOptions) {
    super(local, options);
    this.window = positiveInteger(options.window, 'window', 256);
    this.ackTimeout = positiveInteger(options.ackTimeout, 'ackTimeout', 5000);
    this.duplicateWindow = positiveInteger(options.duplicateWindow, 'duplicateWindow', 120_000);
    this.forwardEnd = options.forwardEnd ?? true;
    this.relay = relayConsumer(local);
  }

  protected lag(): number {
    const stats = this.local.stats();
    return stats.messagesSent - stats.messagesReceived;
  }

  protected pendingWhenLost(): string {
    return `${this.relay.pending} messages await acknowledgement`;
  }

  /**
   * Publishes up to `window` messages ahead and consumes each, in order, once its
   * acknowledgement arrived. A new session starts again at the oldest unconsumed
   * message: JetStream stored a prefix of what one connection sent, so publishing
   * the rest again, in order, keeps the order and adds no duplicate.
   */
  protected async jetStreamSession(nc: NatsConnection): Promise<SessionOutcome> {
    const { jetstreamManager } = natsModules().jetstream;
    const { headers } = natsModules().transport;
    const lost = new AbortController();
    const notifier = new Notifier();
    let publisher: PipelinedPublisher | undefined;
    nc.closed().then(() => {
      lost.abort();
      publisher?.failAll(new Error('connection closed'));
      notifier.notify();
    });
    const onStop = () => notifier.notify();
    this.stopping.signal.addEventListener('abort', onStop);
    // Silence on an open connection (a hung server, publishes dropped with a deleted
    // stream) is JetStream not answering: the session ends and the bridge waits it out.
    const timer = setInterval(() => {
      if (publisher !== undefined && publisher.oldestWait(performance.now()) > this.ackTimeout)
        publisher.failAll(new JetStreamUnavailable(`no acknowledgement within ${this.ackTimeout} ms`));
    }, Math.min(500, this.ackTimeout));
    try {
      try {
        await ensureStream(await jetstreamManager(nc), this.subject, this.options.stream, this.duplicateWindow);
      } catch (error) {
        if (nc.isClosed()) return 'lost';
        throw error;
      }
      publisher = new PipelinedPublisher(nc, this.subject);
      this.markReady();
      this.relay.rewind();
      const inFlight: { acked: boolean; error?: Error; bytes: number }[] = [];
      let inFlightBytes = 0;
      let endSeen = false;
      for (;;) {
        while (
          !this.stopping.signal.aborted &&
          !endSeen &&
          !nc.isClosed() &&
          inFlight.length < this.window &&
          inFlightBytes < MAX_IN_FLIGHT_BYTES
        ) {
          const message = this.relay.next();
          if (message === EMPTY) break;
          if (message === ENDED) {
            endSeen = true;
            break;
          }
          const h: MsgHdrs = headers();
          h.set(MSG_ID_HEADER, this.relay.messageId(message.position));
          const entry: (typeof inFlight)[number] = { acked: false, bytes: message.bytes.length };
          inFlight.push(entry);
          inFlightBytes += entry.bytes;
          publisher.publish(message.bytes, h).then(
            () => {
              entry.acked = true;
              notifier.notify();
            },
            (error: Error) => {
              entry.error = error;
              notifier.notify();
            },
          );
        }
        while (inFlight.length > 0 && inFlight[0].acked) {
          this.relay.commit();
          const { bytes } = inFlight.shift()!;
          inFlightBytes -= bytes;
          this.counters.messages++;
          this.counters.bytes += bytes;
        }
        this.countLost();
        const failed = inFlight[0]?.error;
        if (failed !== undefined) return endOfSession(failed, nc);
        if (nc.isClosed()) return 'lost';
        if (inFlight.length > 0) {
          await notifier.wait();
          continue;
        }
        if (endSeen) {
          if (!this.forwardEnd) return 'ended';
          const h = endMarkerHeaders();
          h.set(MSG_ID_HEADER, this.relay.messageId('end'));
          try {
            await publisher.publish(new Uint8Array(0), h);
          } catch (error) {
            return endOfSession(error as Error, nc);
          }
          return 'ended';
        }
        if (this.stopping.signal.aborted) return 'stopped';
        await this.waitForMore(lost.signal);
      }
    } finally {
      clearInterval(timer);
      this.stopping.signal.removeEventListener('abort', onStop);
    }
  }

  /** At most once: each message is consumed as soon as it is handed to the client. */
  protected async coreSession(nc: NatsConnection): Promise<void> {
    this.watchStatus(nc);
    this.markReady();
    let unflushed = 0;
    for (;;) {
      const message = this.relay.next();
      this.countLost();
      if (message === ENDED) {
        if (this.forwardEnd) nc.publish(this.subject, new Uint8Array(0), { headers: endMarkerHeaders() });
        await this.flush(nc);
        return;
      }
      if (message !== EMPTY) {
        nc.publish(this.subject, message.bytes);
        this.relay.commit();
        this.counters.messages++;
        this.counters.bytes += message.bytes.length;
        if (++unflushed >= CORE_FLUSH_EVERY) {
          unflushed = 0;
          await this.flush(nc);
        }
        continue;
      }
      if (this.stopping.signal.aborted) return;
      await this.waitForMore(undefined);
    }
  }

  /** A 'broadcast' 'overwrite' channel may overwrite messages before the bridge read
   * them: counted in stats().lost, and told as a warning. */
  private countLost(): void {
    const lost = this.relay.lost;
    if (lost === this.counters.lost) return;
    this.event(
      'warning',
      `channel '${this.channel}' overwrote ${lost - this.counters.lost} messages before the bridge read them (its overflow is 'overwrite'; ${lost} lost in all)`,
    );
    this.counters.lost = lost;
  }

  private flush(nc: NatsConnection): Promise<void> {
    return Promise.race([nc.flush(), this.stopped]);
  }

  /** Waits for another message in the channel, or for stop() or the other signal. */
  private async waitForMore(other: AbortSignal | undefined): Promise<void> {
    const either = new AbortController();
    const abort = () => either.abort();
    this.stopping.signal.addEventListener('abort', abort);
    other?.addEventListener('abort', abort);
    if (this.stopping.signal.aborted || other?.aborted) either.abort();
    try {
      await this.relay.waitForMore(either.signal);
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    } finally {
      this.stopping.signal.removeEventListener('abort', abort);
      other?.removeEventListener('abort', abort);
    }
  }
}
