export { Channel } from './channel';
export type { Backend, Mode, CreateOptions, OpenOptions, WaitOptions, ChannelStats } from './channel';
export { ShmChanError } from './errors';
export type { ErrorCode } from './errors';
export type { CustomCodec, CodecOption } from './codec';
export { list } from './list';
export type { ChannelInfo } from './list';
export { createReadStream, createWriteStream } from './streams';
export type { StreamOptions } from './streams';
