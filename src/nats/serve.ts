// A local service answering NATS requests (core NATS request/reply). Each request's
// payload is one MessagePack value, which goes to the service as a client's
// request does; the reply, or the failure, is published to the request's reply
// subject. Bridges on several hosts serving one subject form a queue group, so
// each request is answered by one of them. Like core NATS request/reply this is
// at most once: a request in flight when a bridge dies gets no answer, and the
// caller's own timeout tells it so.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { makeCodec } from '../core/codec';
import { ShmChanError } from '../core/errors';
import { positiveInteger, type NatsBridgeOptions } from './bridge';
import { natsModules } from './client';

/** A reply with this header (value '1') carries a failure: a MessagePack map { name, message, code? }. */
export const ERROR_HEADER = 'Shmchan-Error';

/** The options of serveOverNats. */
export interface ServeOverNatsOptions extends Pick<NatsBridgeOptions, 'servers' | 'subject' | 'connectOptions'> {
  /** The queue group that bridges of this service on several hosts share. Default shmchan-<service>. */
  queue?: string;
  /** Milliseconds a request may wait for the service's reply before it is answered with ERR_TIMEOUT. Default 30000. */
  timeout?: number;
}

/** What NatsService#stats() answers. */
export interface NatsServiceStats {
  /** Requests taken from the subject. */
  requests: number;
  /** Requests answered with the service's reply. */
  replies: number;
  /** Requests answered with a failure (the handler's error, a timeout, no worker left, a payload that is not MessagePack). */
  failures: number;
  /** Whether the bridge is connected to NATS now. */
  connected: boolean;
}

/** A running bridge that answers NATS requests with a local service (serveOverNats). */
export interface NatsService {
  /** The local service's name. */
  readonly service: string;
  /** The NATS subject it answers. */
  readonly subject: string;
  /** Settles when the bridge has stopped. */
  readonly done: Promise<void>;
  /** The bridge's counters. */
  stats(): NatsServiceStats;
  /** Takes no more requests, answers those in hand, drains the connection and closes the client. Resolves like `done`. */
  stop(): Promise<void>;
}

/** Sends one request to the local service (a Client's request). */
export type LocalRequest = (value: unknown, options: { timeout: number }) => Promise<unknown>;

const codec = makeCodec<unknown>('msgpack');

export class NatsServiceBridge implements NatsService {
  readonly subject: string;
  readonly done: Promise<void>;
  private readonly counters = { requests: 0, replies: 0, failures: 0 };
  /** Requests being answered, for stop() to wait for: a count, not a Set of their
   * promises (on sets that gain and lose an entry per message: core/id-table.ts). */
  private inHand = 0;
  private allAnswered: (() => void) | undefined;
  private readonly subscription: Subscription;
  private readonly timeout: number;
  private stopping: Promise<void> | undefined;
  private onStopped!: () => void;

  constructor(
    readonly service: string,
    options: ServeOverNatsOptions,
    private readonly nc: NatsConnection,
    private readonly request: LocalRequest,
    private readonly closeLocal: () => void,
  ) {
    this.subject = options.subject;
    this.timeout = positiveInteger(options.timeout, 'timeout', 30_000);
    this.done = new Promise((resolve) => (this.onStopped = resolve));
    this.subscription = nc.subscribe(this.subject, {
      queue: options.queue ?? `shmchan-${service}`,
      callback: (_error, m) => {
        this.inHand++;
        void this.answer(m).finally(() => {
          if (--this.inHand === 0) this.allAnswered?.();
        });
      },
    });
  }

  stats(): NatsServiceStats {
    return { ...this.counters, connected: !this.nc.isClosed() };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.subscription.drain().catch(() => {});
      if (this.inHand > 0) await new Promise<void>((resolve) => (this.allAnswered = resolve));
      await this.nc.drain().catch(() => {});
      this.closeLocal();
      this.onStopped();
    })();
    return this.done;
  }

  /** Waits until the subscription is known to the server. */
  ready(): Promise<void> {
    return this.nc.flush();
  }

  private async answer(m: Msg): Promise<void> {
    this.counters.requests++;
    let payload: Uint8Array;
    let failed = false;
    try {
      const result = await this.request(decoded(m.data), { timeout: this.timeout });
      payload = encoded(result);
    } catch (error) {
      failed = true;
      payload = encoded(describe(error));
    }
    if (failed) this.counters.failures++;
    else this.counters.replies++;
    if (m.reply === undefined || m.reply === '') return; // published without a reply subject: nobody to answer
    const headers = natsModules().transport.headers();
    if (failed) headers.set(ERROR_HEADER, '1');
    try {
      m.respond(payload, failed ? { headers } : undefined);
    } catch {
      // the connection is gone: the caller's timeout tells it
    }
  }
}

/** An empty payload is `undefined`, as in the services' wire format. */
function decoded(data: Uint8Array): unknown {
  if (data.length === 0) return undefined;
  return codec.decode(Buffer.from(data.buffer, data.byteOffset, data.length), 0, data.length);
}

function encoded(value: unknown): Uint8Array {
  return value === undefined ? new Uint8Array(0) : Uint8Array.from(codec.encode(value)); // a copy: encode answers a scratch buffer
}

/** The failure map of the services' wire format: the remote error's when the service failed the request. */
function describe(error: unknown): { name: string; message: string; code?: string | number } {
  const remote = error instanceof ShmChanError ? error.remote : undefined;
  const { name, message, code } = (remote ?? error) as { name?: unknown; message?: unknown; code?: unknown };
  return {
    name: typeof name === 'string' ? name : 'Error',
    message: typeof message === 'string' ? message : String(error),
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
  };
}
