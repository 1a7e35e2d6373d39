// The ES module entry: the same objects as the CommonJS entry, so a process that
// loads both sees one Channel class.
import shmchan from './index.js';

export const { Channel, Service, Client, ShmChanError, list, createReadStream, createWriteStream } = shmchan;
export type * from './index.js';
