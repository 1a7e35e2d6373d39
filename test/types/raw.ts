// Type checks of the published API (tsc over test/types; each @ts-expect-error
// line must be an error, and every other line must compile).
import { Channel, ShmChanError, createReadStream, list, type ChannelStats } from 'shmchan';
import { bridgeToNats, type Bridge } from 'shmchan/nats';
import { registerMetrics } from 'shmchan/otel';

export async function raw(): Promise<void> {
  // codec: 'raw' makes the messages Buffers
  const created = Channel.create('t', { codec: 'raw' });
  const received: Buffer = created.tryReceive()!;
  created.trySend(received);
  // @ts-expect-error a raw channel carries Buffers, not strings
  created.trySend('text');
  const opened = Channel.open('t', { codec: 'raw' });
  const next: Buffer = await opened.receive();
  // @ts-expect-error a Buffer is not a number
  const wrong: number = opened.receiveSync();
  const connected = await Channel.connect('t', { codec: 'raw', signal: AbortSignal.timeout(10) });
  for await (const message of connected) message.readUInt8(0);
  void [next, wrong];
}

export function typed(): void {
  const untyped = Channel.create('u');
  // @ts-expect-error without a type argument messages are unknown
  const text: string = untyped.tryReceive();
  const orders = Channel.create<{ id: number }>('o', { mode: 'mpsc', capacity: 4096 });
  orders.trySend({ id: 1 });
  // @ts-expect-error the message type is { id: number }
  orders.trySend({ id: 'one' });
  // @ts-expect-error a misspelt option is a type error too
  Channel.create('o', { capacty: 4096 });
  const stats: ChannelStats = orders.stats();
  const error = new Error() as unknown;
  if (error instanceof ShmChanError && error.code === 'ERR_TIMEOUT') void error.message;
  void [text, stats, list()[0]?.stale, createReadStream('s').pipe(process.stdout)];
}

export async function entries(): Promise<void> {
  const bridge: Bridge = await bridgeToNats('c', { servers: 'nats://localhost:4222', subject: 's' });
  await bridge.stop();
  registerMetrics().unregister();
}
