// The ES module entry of shmchan/nats: the same objects as the CommonJS entry.
import nats from './nats.js';

export const { bridgeToNats, bridgeFromNats } = nats;
export type * from './nats.js';
