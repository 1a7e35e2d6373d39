// The package's public entry: it only re-exports.
/// <reference types="node" preserve="true" />
export { Channel } from './core/channel';
export type { Backend, Mode, CreateOptions, OpenOptions, WaitOptions } from './core/options';
export type { ChannelStats } from './core/stats';
export { ShmChanError } from './core/errors';
export type { ErrorCode } from './core/errors';
export type { CustomCodec, CodecOption } from './core/codec';
export { list } from './list';
export type { ChannelInfo } from './list';
export { createReadStream, createWriteStream } from './streams';
export type { StreamOptions } from './streams';
export type { SysvKey } from './core/sysv';
export { Service } from './service';
export type { ServiceOptions, ServeOptions, Handler, Request } from './service';
export { Client } from './client';
export type { ClientOptions, RequestOptions } from './client';
export type { RemoteError } from './core/errors';
