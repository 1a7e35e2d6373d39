// The ES module entry: the same objects as the CommonJS entry, so a process that
// loads both sees one Channel class.
/// <reference types="node" preserve="true" />
import shmchan from './index.js';

export const { Channel, ShmChanError, list, createReadStream, createWriteStream } = shmchan;
// The classes are types too: `export type *` leaves out the names declared here.
export type Channel<T = unknown> = import('./index.js').Channel<T>;
export type ShmChanError = import('./index.js').ShmChanError;
export type * from './index.js';
