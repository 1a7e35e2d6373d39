// The ES module entry of shmchan/otel: the same objects as the CommonJS entry.
/// <reference types="node" preserve="true" />
import otel from './otel.js';

export const { registerMetrics, instrumentNames } = otel;
export type * from './otel.js';
