export { Channel } from './channel';
export type { Backend, Mode, CreateOptions, OpenOptions, WaitOptions, ChannelStats } from './channel';
export { ShmChanError } from './errors';
export type { ErrorCode } from './errors';
export type { CustomCodec, CodecOption } from './codec';
export type { SysvKey } from './sysv';
