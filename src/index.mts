// The ES module entry: the same objects as the CommonJS entry, so a process that
// loads both sees one Channel class.
/// <reference types="node" preserve="true" />
import shmchan from './index.js';

export const { Channel, Service, Client, ShmChanError, list, createReadStream, createWriteStream } = shmchan;
// The classes are types too: `export type *` leaves out the names declared here.
export type Channel<T = unknown> = import('./index.js').Channel<T>;
export type Service<Req = unknown, Res = unknown> = import('./index.js').Service<Req, Res>;
export type Client<Req = unknown, Res = unknown> = import('./index.js').Client<Req, Res>;
export type ShmChanError = import('./index.js').ShmChanError;
export type * from './index.js';
