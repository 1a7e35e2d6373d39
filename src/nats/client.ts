// The NATS side of the bridges: loading the optional client, connecting with
// retries, finding or creating the stream, and JetStream publishing with
// pipelined acknowledgements. Only shmchan/nats loads this file.
import type { ConnectionOptions, Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import { IdTable } from '../core/id-table';

type TransportModule = typeof import('@nats-io/transport-node');
type JetStreamModule = typeof import('@nats-io/jetstream');

let modules: { transport: TransportModule; jetstream: JetStreamModule } | undefined;

/** The NATS client packages are optional peer dependencies: loaded on first use. */
export function natsModules(): { transport: TransportModule; jetstream: JetStreamModule } {
  if (modules !== undefined) return modules;
  try {
    modules = { transport: require('@nats-io/transport-node'), jetstream: require('@nats-io/jetstream') };
  } catch (error) {
    throw Object.assign(
      new Error(
        `shmchan/nats needs the NATS client: npm install @nats-io/transport-node @nats-io/jetstream (${(error as Error).message.split('\n')[0]})`,
        { cause: error },
      ),
      { code: (error as { code?: string }).code ?? 'MODULE_NOT_FOUND' },
    );
  }
  return modules;
}

/** A header that marks the end of a channel's stream; its message has no payload. */
export const END_HEADER = 'Shmchan-End';
export const MSG_ID_HEADER = 'Nats-Msg-Id';

/**
 * A sending bridge's message id is `<origin>:<position>`: the origin names one
 * channel instance, and positions grow in the order its messages were sent. So it
 * is also a per-producer order key: for one origin, a message whose position is not
 * above the last one delivered is a repeat.
 */
export function parseMessageId(headers: MsgHdrs | undefined): { origin: string; position: bigint } | undefined {
  const id = headers?.get(MSG_ID_HEADER);
  if (id === undefined || id === '') return undefined;
  const colon = id.lastIndexOf(':');
  const digits = id.slice(colon + 1);
  if (colon <= 0 || !/^\d{1,20}$/.test(digits)) return undefined;
  return { origin: id.slice(0, colon), position: BigInt(digits) };
}

export function endMarkerHeaders(): MsgHdrs {
  const h = natsModules().transport.headers();
  h.set(END_HEADER, '1');
  return h;
}

export function isEndMarker(headers: MsgHdrs | undefined): boolean {
  return headers !== undefined && headers.get(END_HEADER) === '1';
}

/** Resolves after ms, or at once when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Connects, trying again every so often (up to 2 s apart) until it works or the
 * signal aborts (then undefined). `retries` counts the failed attempts.
 */
export async function connectWithRetry(
  options: ConnectionOptions,
  signal: AbortSignal,
  onFailure: (error: Error) => void,
): Promise<NatsConnection | undefined> {
  let delay = 100;
  for (;;) {
    if (signal.aborted) return undefined;
    try {
      const nc = await natsModules().transport.connect(options);
      if (signal.aborted) {
        await nc.close();
        return undefined;
      }
      return nc;
    } catch (error) {
      onFailure(error as Error);
      await pause(delay, signal);
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** A stream name made from a subject: stream names exclude . * > and spaces. */
export function defaultStreamName(subject: string): string {
  return `SHMCHAN_${subject.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/** A NATS client error for something JetStream does not have (some carry only a text). */
export function isNotFound(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: string };
  return code === 404 || code === '404' || /not found/i.test(message ?? '');
}

/**
 * The stream that stores `subject`: the one named `name` if given (created when
 * missing), else any stream whose subjects take it, else a new one named after
 * the subject. Creating an identical stream twice is not an error in JetStream,
 * so two bridges starting at once agree.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  subject: string,
  name: string | undefined,
  duplicateWindowMs: number,
): Promise<string> {
  const { nanos } = natsModules().transport;
  const config = (stream: string) => ({ name: stream, subjects: [subject], duplicate_window: nanos(duplicateWindowMs) });
  if (name !== undefined) {
    try {
      await jsm.streams.info(name);
      return name;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    await jsm.streams.add(config(name));
    return name;
  }
  try {
    return await jsm.streams.find(subject);
  } catch (error) {
    if (!isNotFound(error) && !/no stream matches/i.test((error as Error).message)) throw error;
  }
  const stream = defaultStreamName(subject);
  try {
    await jsm.streams.add(config(stream));
  } catch (error) {
    // another bridge created a stream for the subject in the meantime
    return jsm.streams.find(subject).catch(() => Promise.reject(error));
  }
  return stream;
}

/** The server refused this message: it would be refused again (too large, no permission...). */
export class PublishRejected extends Error {}

/** JetStream did not answer a publish (503 no responders) on a connection that is still
 * open: the server is shutting down or starting, or JetStream is recovering. */
export class JetStreamUnavailable extends Error {}

/**
 * Whether an error means JetStream is away for now rather than that something is
 * wrong: our 503 above, a request that met no responders or timed out (the client
 * reports a JetStream API without responders as "not enabled"), or the API's own
 * "temporarily unavailable" (503). A bridge that ran before waits and tries again.
 */
export function isJetStreamAway(error: unknown): boolean {
  if (error instanceof JetStreamUnavailable) return true;
  const { name, status, cause } = error as { name?: string; status?: unknown; cause?: unknown };
  if (name === 'TimeoutError' || name === 'NoResponders' || name === 'JetStreamNotEnabled') return true;
  if (name === 'JetStreamApiError' && status === 503) return true;
  if (name === 'RequestError' && cause !== undefined) return isJetStreamAway(cause);
  return false;
}

interface Awaited {
  readonly id: number;
  resolve(ack: { seq: number; duplicate: boolean }): void;
  reject(error: Error): void;
  sentAt: number;
}

/**
 * JetStream publishing without a request per message: every publish names a
 * reply subject under one inbox subscription, and the PubAck arriving there
 * settles it. Many publishes can await their acks at once; they reach the server
 * in order over the one connection.
 */
export class PipelinedPublisher {
  private readonly prefix: string;
  private readonly waiting = new IdTable<Awaited>();
  private counter = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
  ) {
    this.prefix = natsModules().transport.createInbox();
    nc.subscribe(`${this.prefix}.*`, { callback: (_error, msg) => this.settle(msg) });
  }

  publish(data: Uint8Array, headers: MsgHdrs): Promise<{ seq: number; duplicate: boolean }> {
    const id = this.counter++;
    return new Promise((resolve, reject) => {
      this.waiting.add({ id, resolve, reject, sentAt: performance.now() });
      try {
        this.nc.publish(this.subject, data, { headers, reply: `${this.prefix}.${id}` });
      } catch (error) {
        this.waiting.delete(id);
        // on an open connection it is the message (too large for the server's max_payload)
        reject(this.nc.isClosed() ? (error as Error) : new PublishRejected(`cannot publish to '${this.subject}': ${(error as Error).message}`));
      }
    });
  }

  /** Age in ms of the oldest publish still waiting for its ack (0 when none). */
  oldestWait(now: number): number {
    let oldest = now;
    for (const awaited of this.waiting.values()) oldest = Math.min(oldest, awaited.sentAt);
    return now - oldest;
  }

  /** Fails every publish still waiting (the connection is gone). */
  failAll(error: Error): void {
    for (const awaited of this.waiting.values()) {
      this.waiting.delete(awaited.id);
      awaited.reject(error);
    }
  }

  private settle(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length + 1));
    const awaited = this.waiting.get(id);
    if (awaited === undefined) return;
    this.waiting.delete(id);
    if (msg.headers?.code === 503) {
      awaited.reject(new JetStreamUnavailable(`JetStream did not answer a publish to '${this.subject}' (503 no responders)`));
      return;
    }
    let ack: { seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } };
    try {
      ack = msg.json();
    } catch (error) {
      awaited.reject(new PublishRejected(`unreadable JetStream acknowledgement: ${(error as Error).message}`));
      return;
    }
    if (ack.error !== undefined || typeof ack.seq !== 'number')
      awaited.reject(new PublishRejected(`JetStream refused the message: ${ack.error?.description ?? 'no sequence in the acknowledgement'}`));
    else awaited.resolve({ seq: ack.seq, duplicate: ack.duplicate === true });
  }
}

/** FNV-1a: a tag for "these sequence numbers belong to this stream". */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
