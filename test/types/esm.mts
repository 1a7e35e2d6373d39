// The ES module entry: the same types, Channel usable as a value and as a type.
import { Channel } from 'shmchan';
import { bridgeFromNats } from 'shmchan/nats';
import { registerMetrics, type MetricsOptions } from 'shmchan/otel';

const channel: Channel<Buffer> = Channel.create('e', { codec: 'raw' });
// @ts-expect-error a raw channel carries Buffers
channel.trySend(42);
const options: MetricsOptions = { filter: ({ backend }) => backend === 'posix' };
export const used = [channel, bridgeFromNats, registerMetrics(options)];
