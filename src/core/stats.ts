// A channel's counters and who is attached, as stats() and the listing show them.

export interface ChannelStats {
  capacity: number;
  used: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  producers: number;
  /** Live consumers (subscribers in 'broadcast'). */
  consumers: number;
  consumerPid: number | null;
  creatorPid: number | null;
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
