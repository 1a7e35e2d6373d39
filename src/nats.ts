// shmchan/nats: bridges between a local channel and a NATS subject, so that
// channels on different hosts are connected through NATS (JetStream by default).
// The NATS client is an optional peer dependency, loaded only by this entry.
/// <reference types="node" preserve="true" />
import { checkBridgeOptions, openLocalChannel, type Bridge, type BridgeBase } from './nats/bridge';
import { natsModules } from './nats/client';
import { FromNatsBridge, type FromNatsOptions } from './nats/from';
import { NatsServiceBridge, type NatsService, type ServeOverNatsOptions } from './nats/serve';
import { ToNatsBridge, type ToNatsOptions } from './nats/to';
import { Client } from './client';

export type { Bridge, BridgeChannelOptions, BridgeEvent, BridgeStats, NatsBridgeOptions, NatsMode } from './nats/bridge';
export type { ToNatsOptions } from './nats/to';
export type { FromNatsOptions } from './nats/from';
export type { NatsService, NatsServiceStats, ServeOverNatsOptions } from './nats/serve';

/**
 * Receives from the local channel `channelName` (created if missing) and publishes
 * each message's bytes to `options.subject`. Resolves once connected and set up.
 */
export function bridgeToNats(channelName: string, options: ToNatsOptions): Promise<Bridge> {
  return startBridge(channelName, options, (local) => new ToNatsBridge(local, options));
}

/**
 * Takes the messages of `options.subject` and sends their bytes into the local
 * channel `channelName` (created if missing; spsc in JetStream mode).
 */
export function bridgeFromNats(options: FromNatsOptions, channelName: string): Promise<Bridge> {
  return startBridge(channelName, options, (local) => new FromNatsBridge(local, options));
}

async function startBridge(
  channelName: string,
  options: ToNatsOptions | FromNatsOptions,
  make: (local: ReturnType<typeof openLocalChannel>) => BridgeBase,
): Promise<Bridge> {
  checkBridgeOptions(options);
  const { connect } = natsModules().transport;
  const local = openLocalChannel(channelName, options.channelOptions);
  let bridge: BridgeBase;
  try {
    bridge = make(local);
  } catch (error) {
    local.close();
    throw error;
  }
  let nc;
  try {
    nc = await connect(bridge.firstConnectOptions());
  } catch (error) {
    local.close();
    throw cannotConnect(options.servers, error);
  }
  bridge.start(nc);
  await Promise.race([bridge.ready, bridge.done]);
  return bridge;
}

/**
 * Answers NATS requests on `options.subject` with the local service `serviceName`
 * (core NATS request/reply): each request's MessagePack payload goes to the service
 * as a client's request, and the reply, or a failure (header Shmchan-Error), goes
 * back to the caller. Waits for the service to exist; resolves once subscribed.
 */
export async function serveOverNats(serviceName: string, options: ServeOverNatsOptions): Promise<NatsService> {
  checkBridgeOptions(options);
  const { connect } = natsModules().transport;
  const client = await Client.connect(serviceName);
  let nc;
  try {
    nc = await connect({ name: `shmchan service ${serviceName}`, ...options.connectOptions, servers: options.servers, reconnect: true, maxReconnectAttempts: -1 });
  } catch (error) {
    client.close();
    throw cannotConnect(options.servers, error);
  }
  let bridge: NatsServiceBridge;
  try {
    bridge = new NatsServiceBridge(serviceName, options, nc, (value, { timeout }) => client.request(value, { timeout }), () => client.close());
  } catch (error) {
    client.close();
    await nc.close();
    throw error;
  }
  await bridge.ready();
  return bridge;
}

function cannotConnect(servers: string | string[], error: unknown): Error {
  const { code, message } = error as { code?: string; message: string };
  return Object.assign(new Error(`cannot connect to NATS at ${String(servers)}: ${message}`, { cause: error }), { code });
}
