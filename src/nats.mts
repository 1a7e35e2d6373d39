// The ES module entry of shmchan/nats: the same objects as the CommonJS entry.
/// <reference types="node" preserve="true" />
import nats from './nats.js';

export const { bridgeToNats, bridgeFromNats, serveOverNats } = nats;
export type * from './nats.js';
