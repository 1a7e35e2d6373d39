// Internal, not public API: what a feature built on a channel's ring needs beyond
// send and receive. The NATS bridge (src/nats/relay.ts) uses it to look at a
// message, hand it on, and consume it only once it is safe elsewhere. The core
// exposes this one accessor and knows nothing of what uses it.
import type { Mode } from './options';
import type { RingMemory } from './ring';
import type { BroadcastReader } from './broadcast';
import type { MpmcReader } from './mpmc';
import type { MpscReader } from './mpsc';
import type { SpscReader } from './spsc';
import type { ShmChanError } from './errors';

// A registered symbol, so that every copy of this module (a bundler's, a test
// runner's) names the same method.
export const channelInternals: unique symbol = Symbol.for('shmchan.internals') as never;

export interface ChannelInternals {
  readonly name: string;
  readonly mode: Mode;
  /** Whether messages are msgpackr records, which decode only with this segment's structures. */
  readonly records: boolean;
  readonly ring: RingMemory;
  /** Takes the consumer role, or a consumer slot in the fan-out modes (if this
   * handle does not hold it), and returns its reader. */
  consumer(): SpscReader | MpscReader | MpmcReader | BroadcastReader;
  /** Takes the producer role (if this handle does not hold it); answers its slot. */
  producer(): number;
  /** Throws ERR_CLOSED once the channel is closed, ERR_CORRUPT once its header is gone. */
  live(): void;
  /** Turns a data-path failure into a ShmChanError naming the channel. */
  error(error: unknown): ShmChanError;
  /** Resolves once ready() is true, sleeping like receive() does meanwhile. */
  waitUntil(ready: () => boolean, signal: AbortSignal | undefined): Promise<void>;
}
