// A channel's counters and who is attached, as stats() and the listing show them.

export interface ChannelStats {
  capacity: number;
  used: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  producers: number;
  consumerPid: number | null;
  creatorPid: number | null;
  ended: boolean;
}

/** What the native core reports: the same, with 0 for no process. */
export type NativeStats = Omit<ChannelStats, 'consumerPid' | 'creatorPid'> & { consumerPid: number; creatorPid: number };

export function channelStats(s: NativeStats): ChannelStats {
  return { ...s, consumerPid: s.consumerPid === 0 ? null : s.consumerPid, creatorPid: s.creatorPid === 0 ? null : s.creatorPid };
}
