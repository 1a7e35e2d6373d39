// NATS -> channel. In JetStream mode the bridge is the only producer of an spsc
// channel and reads a durable pull consumer, a bounded batch at a time, sending
// each message into the channel (waiting for room: that is the backpressure)
// before it acknowledges it.
//
// Why this is exactly once. For every message, with stream sequence s:
//   1. beginSend(s): s is stored as "in flight" in the producer slot;
//   2. the message is sent: committing its record (the length word), then
//      publishing the tail;
//   3. endSend(s): the checkpoint (s, tail after s) is stored, s first;
//   4. the message is acknowledged (in batches: the consumer acks all up to it).
// A restart takes the producer role, whose tail recovery counts a record that was
// committed but whose tail was not yet published, and compares tails:
//   - killed before the commit in 2: the tail equals the checkpoint's, s is not in
//     the ring, and it is sent again;
//   - killed after the commit, before or after the tail store: the recovered tail
//     is past the checkpoint's and s is in flight, so s counts as delivered;
//   - killed during 3, after the sequence store: the checkpoint already names s;
//   - killed after 3, before 4: the checkpoint names s.
// The checkpoint, not the consumer's acknowledgements, says what the channel
// holds, so every session recreates the durable consumer to start right after
// the checkpoint: messages fetched by a dead bridge and not acknowledged come
// again at once and in order, rather than after the ack wait behind newer ones.
// Anything at or below the checkpoint is skipped (and acknowledged).
import type { NatsConnection } from '@nats-io/transport-node';
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Channel } from '../core/channel';
import { ShmChanError, incompatible } from '../core/errors';
import { BridgeBase, Notifier, positiveInteger, type NatsBridgeOptions, type SessionOutcome } from './bridge';
import { ensureStream, hash32, isEndMarker, isNotFound, natsModules, parseMessageId, pause } from './client';
import { relayProducer, type RelayProducer } from './relay';

/** The options of bridgeFromNats. */
export interface FromNatsOptions extends NatsBridgeOptions {
  /** JetStream: the durable consumer's name. Default shmchan-<channel>. */
  durable?: string;
  /** JetStream: messages per fetch; at most this many are held in memory. Default 256. */
  batch?: number;
  /** Core: messages held while the channel is full; more are dropped. Default 10000. */
  maxPending?: number;
}

const FETCH_EXPIRES_MS = 2000;
const PEER_GONE_RETRY_MS = 200;

export class FromNatsBridge extends BridgeBase {
  readonly direction = 'from';
  private readonly producer: RelayProducer | undefined;
  private readonly durable: string;
  private readonly batch: number;
  private readonly maxPending: number;
  /** Stream sequence of the last message in the channel. */
  private delivered = 0;
  private pendingInConsumer = 0;
  private readonly queue: { data: Uint8Array; end: boolean }[] = [];
  private fetching: ConsumerMessages | undefined;
  /** The last position delivered per sending channel (see parseMessageId). */
  private readonly lastPositions = new Map<string, bigint>();
  private waitingForConsumer = false;

  constructor(local: Channel<Buffer>, options: FromNatsOptions) {
    super(local, options);
    this.batch = positiveInteger(options.batch, 'batch', 256);
    this.maxPending = positiveInteger(options.maxPending, 'maxPending', 10_000);
    this.durable = options.durable ?? `shmchan-${local.name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    if (this.mode === 'jetstream') {
      if (local.mode !== 'spsc')
        throw incompatible(
          `channel '${local.name}' is ${local.mode}; a JetStream bridge into a channel needs an spsc channel, with the bridge as its only producer (its checkpoint lives in the producer slot); a ${local.mode} channel takes a bridge in core mode (at most once)`,
        );
      this.producer = relayProducer(local);
    }
    this.stopping.signal.addEventListener('abort', () => this.fetching?.stop());
  }

  protected lag(): number {
    return this.mode === 'core' ? this.queue.length : this.pendingInConsumer;
  }

  protected pendingWhenLost(): string {
    return `${this.delivered} is the last stream sequence delivered`;
  }


  protected async jetStreamSession(nc: NatsConnection): Promise<SessionOutcome> {
    const { jetstreamManager, jetstream } = natsModules().jetstream;
    const producer = this.producer!;
    let jsm: JetStreamManager;
    let js: JetStreamClient;
    let consumer: Consumer;
    let stream: string;
    try {
      jsm = await jetstreamManager(nc);
      js = jetstream(nc);
      stream = await ensureStream(jsm, this.subject, this.options.stream, 120_000);
      const info = await jsm.streams.info(stream);
      // sequences belong to one stream: a stream deleted and made again starts over
      const checkpoint = producer.recover(hash32(`${stream}\0${info.created}`));
      this.delivered = checkpoint.sequence;
      if (this.delivered > 0 && info.state.first_seq > this.delivered + 1)
        this.event(
          'warning',
          `stream ${stream} no longer holds messages ${this.delivered + 1} to ${info.state.first_seq - 1} (its limits removed them before they were delivered)`,
        );
      await this.rememberLastDelivered(jsm, stream);
      consumer = await this.resetConsumer(jsm, js, stream);
      this.markReady();
    } catch (error) {
      if (nc.isClosed()) return 'lost';
      throw error;
    }
    let expectedDelivery = 1;
    for (;;) {
      if (this.stopping.signal.aborted) return 'stopped';
      if (nc.isClosed()) return 'lost';
      let acked: JsMsg | undefined;
      let last: JsMsg | undefined;
      const ack = () => {
        if (last === undefined || last === acked) return;
        acked = last;
        try {
          last.ack();
        } catch {
          // a lost ack only means a redelivery, which the checkpoint skips
        }
      };
      let reset = false;
      let ended = false;
      try {
        this.fetching = await consumer.fetch({ max_messages: this.batch, expires: FETCH_EXPIRES_MS });
        if (this.stopping.signal.aborted) this.fetching.stop();
        for await (const m of this.fetching) {
          if (this.stopping.signal.aborted) break;
          if (m.info.deliverySequence !== expectedDelivery) {
            // a delivery went missing (a lost connection, a server restart): start over from the checkpoint
            reset = true;
            break;
          }
          expectedDelivery++;
          this.pendingInConsumer = m.info.pending;
          if (m.seq <= this.delivered) {
            last = m;
            continue;
          }
          const key = parseMessageId(m.headers);
          if (key !== undefined && key.position <= (this.lastPositions.get(key.origin) ?? -1n)) {
            // stored twice (its sender came back after the duplicate window): not sent again
            producer.endSend(m.seq);
            this.delivered = m.seq;
            this.counters.repeats++;
            last = m;
            continue;
          }
          producer.beginSend(m.seq);
          if (isEndMarker(m.headers)) {
            this.local.end();
            ended = true;
          } else if (!this.local.trySend(m.data as Buffer)) {
            ack(); // tell the server how far we got before waiting for room
            if (!(await this.sendWaiting(m.data as Buffer))) break;
          }
          producer.endSend(m.seq);
          this.delivered = m.seq;
          if (key !== undefined) this.lastPositions.set(key.origin, key.position);
          last = m;
          if (ended) break;
          this.counters.messages++;
          this.counters.bytes += m.data.length;
        }
      } catch (error) {
        if (error instanceof ShmChanError) throw error;
        if (nc.isClosed()) return 'lost';
        this.event('reset', `fetching from the consumer failed (${(error as Error).message}); starting again from the checkpoint`);
        reset = true;
      } finally {
        this.fetching = undefined;
        ack();
      }
      if (ended) return 'ended';
      if (reset && !this.stopping.signal.aborted && !nc.isClosed()) {
        await pause(100, this.stopping.signal);
        try {
          consumer = await this.resetConsumer(jsm, js, stream);
        } catch (error) {
          if (nc.isClosed()) return 'lost';
          throw error;
        }
        expectedDelivery = 1;
      }
    }
  }

  /** After a restart: the order key of the last message in the channel, so that a
   * repeat of it or of an earlier one from the same sender is still recognised. */
  private async rememberLastDelivered(jsm: JetStreamManager, stream: string): Promise<void> {
    if (this.delivered === 0) return;
    let stored;
    try {
      stored = await jsm.streams.getMessage(stream, { seq: this.delivered });
    } catch {
      return; // no longer in the stream
    }
    const key = parseMessageId(stored?.header);
    if (key !== undefined && key.position > (this.lastPositions.get(key.origin) ?? -1n))
      this.lastPositions.set(key.origin, key.position);
  }

  /** Makes the durable consumer start right after the checkpoint. */
  private async resetConsumer(jsm: JetStreamManager, js: JetStreamClient, name: string): Promise<Consumer> {
    const { AckPolicy, DeliverPolicy } = natsModules().jetstream;
    const { nanos } = natsModules().transport;
    try {
      await jsm.consumers.delete(name, this.durable);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await jsm.consumers.add(name, {
      durable_name: this.durable,
      ack_policy: AckPolicy.All,
      filter_subject: this.subject,
      max_ack_pending: Math.max(1000, this.batch * 4),
      ack_wait: nanos(30_000),
      ...(this.delivered > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.delivered + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    return js.consumers.get(name, this.durable);
  }

  /**
   * Sends, waiting for room as long as it takes; a consumer that died leaves its
   * messages for the next one, so the bridge waits for that one. False if stopped
   * first (the message was not sent).
   */
  private async sendWaiting(data: Buffer): Promise<boolean> {
    for (;;) {
      try {
        await this.local.send(data, { signal: this.stopping.signal });
        if (this.waitingForConsumer) this.event('connected', `channel '${this.channel}' has a consumer again`);
        this.waitingForConsumer = false;
        return true;
      } catch (error) {
        if ((error as Error).name === 'AbortError') return false;
        if ((error as ShmChanError).code !== 'ERR_PEER_GONE') throw error;
        if (!this.waitingForConsumer) this.event('waiting', `the consumer of channel '${this.channel}' died; waiting for the next one`);
        this.waitingForConsumer = true;
        await pause(PEER_GONE_RETRY_MS, this.stopping.signal);
        if (this.stopping.signal.aborted) return false;
      }
    }
  }

  /** At most once: a subscription; messages that arrive while the channel stays full
   * queue up to maxPending, and further ones are dropped. */
  protected async coreSession(nc: NatsConnection): Promise<void> {
    this.watchStatus(nc);
    const notifier = new Notifier();
    const subscription = nc.subscribe(this.subject, {
      callback: (_error, m) => {
        if (this.queue.length >= this.maxPending) this.counters.dropped++;
        else this.queue.push({ data: m.data, end: isEndMarker(m.headers) });
        notifier.notify();
      },
    });
    this.stopping.signal.addEventListener('abort', () => notifier.notify(), { once: true });
    await nc.flush();
    this.markReady();
    try {
      for (;;) {
        while (this.queue.length > 0 && !this.stopping.signal.aborted) {
          const { data, end } = this.queue[0];
          if (end) {
            this.queue.length = 0;
            this.local.end();
            return;
          }
          if (!(await this.sendWaiting(data as Buffer))) break;
          this.queue.shift();
          this.counters.messages++;
          this.counters.bytes += data.length;
        }
        if (this.stopping.signal.aborted) return;
        await notifier.wait();
      }
    } finally {
      subscription.unsubscribe();
      // what is already here goes in if there is room; the rest is dropped (at most once)
      for (const { data, end } of this.queue.splice(0)) {
        let sent = false;
        try {
          sent = !end && this.local.trySend(data as Buffer);
        } catch {
          // ended or closed meanwhile: dropped like the rest
        }
        if (!sent) this.counters.dropped++;
      }
    }
  }
}
