// A channel's counters and who is attached, as stats() and the listing show them.

/** What Channel#stats() answers: the channel's counters, as every process sees them. */
export interface ChannelStats {
  /** Ring bytes. */
  capacity: number;
  /** Ring bytes holding messages not yet received (with their record headers). */
  used: number;
  /** Messages sent into the channel since it was created, by every producer. */
  messagesSent: number;
  /** Messages received out of it since it was created. */
  messagesReceived: number;
  /** Encoded bytes of the messages sent. */
  bytesSent: number;
  /** Encoded bytes of the messages received. */
  bytesReceived: number;
  /** Live producers (handles holding the producer role). */
  producers: number;
  /** Live consumers (subscribers in 'broadcast'). */
  consumers: number;
  /** The pid of the live consumer, or null: for display only (liveness is kept by the kernel). */
  consumerPid: number | null;
  /** The pid of the creator while it has the channel open, or null: for display only. */
  creatorPid: number | null;
  /** Whether end() was called: no more messages can be sent. */
  ended: boolean;
  /** 'broadcast' with overflow 'overwrite': messages overwritten before this handle read them. */
  messagesLost: number;
}

/** What the native core reports: the same, with 0 for no process. */
export type NativeStats = Omit<ChannelStats, 'consumerPid' | 'creatorPid' | 'messagesLost'> & { consumerPid: number; creatorPid: number };

export function channelStats(s: NativeStats, messagesLost = 0): ChannelStats {
  return {
    ...s,
    consumerPid: s.consumerPid === 0 ? null : s.consumerPid,
    creatorPid: s.creatorPid === 0 ? null : s.creatorPid,
    messagesLost,
  };
}
