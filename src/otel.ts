// shmchan/otel: every channel on this host as OpenTelemetry metrics, for the
// stacks people already run. Observable instruments read the channels' counters
// when the SDK collects, through the listing (src/list.ts): no channel is joined,
// no role taken, nothing written. @opentelemetry/api is an optional peer
// dependency, loaded only by this entry and only when no meter is passed.
/// <reference types="node" preserve="true" />
import type { Attributes, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { invalidArg } from './core/errors';
import { optionsObject } from './core/options';
import { listDetails, type ChannelDetails } from './list';

/** The options of registerMetrics. */
export interface MetricsOptions {
  /** The meter to register the instruments with. Default: the global meter
   * provider's meter named 'shmchan' (`metrics.getMeter('shmchan', version)`). */
  meter?: Meter;
  /** Which channels to report. Default: every channel on this host. */
  filter?: (channel: { name: string; backend: 'posix' | 'sysv' }) => boolean;
}

/** What registerMetrics returns: stops the reporting. */
export interface MetricsRegistration {
  /** Removes the callback: the instruments report nothing more. */
  unregister(): void;
}

/** The instruments registered, by name; each point carries the attributes
 * `shmchan.channel`, `shmchan.backend` and `shmchan.mode`. */
export const instrumentNames = {
  /** Messages sent into (`shmchan.direction` 'sent') and received out of ('received') a channel, cumulative. */
  messages: 'shmchan.messages',
  /** Bytes of those messages, cumulative. */
  bytes: 'shmchan.bytes',
  /** The share of the ring in use, 0 to 1. */
  fill: 'shmchan.fill',
  /** Messages sent and not yet received. */
  lag: 'shmchan.lag',
} as const;

type ApiModule = typeof import('@opentelemetry/api');

function loadApi(): ApiModule {
  try {
    return require('@opentelemetry/api');
  } catch (error) {
    throw Object.assign(
      new Error(`shmchan/otel needs @opentelemetry/api when no meter is passed: npm install @opentelemetry/api (${(error as Error).message.split('\n')[0]})`, {
        cause: error,
      }),
      { code: (error as { code?: string }).code ?? 'MODULE_NOT_FOUND' },
    );
  }
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Registers observable instruments that report every channel on this host (both
 * backends) each time the OpenTelemetry SDK collects: `shmchan.messages` and
 * `shmchan.bytes` (counters, by `shmchan.direction` 'sent' or 'received'),
 * `shmchan.fill` (a gauge, 0 to 1) and `shmchan.lag` (a gauge: messages sent and
 * not yet received). Reading takes no role and writes nothing.
 */
export function registerMetrics(options?: MetricsOptions): MetricsRegistration {
  const o = optionsObject(options, ['meter', 'filter']);
  const filter = o.filter as MetricsOptions['filter'];
  if (filter !== undefined && typeof filter !== 'function') throw invalidArg('filter must be a function of { name, backend }');
  const meter = (o.meter as Meter | undefined) ?? loadApi().metrics.getMeter('shmchan', packageVersion());
  if (typeof meter?.addBatchObservableCallback !== 'function') throw invalidArg('meter must be an OpenTelemetry Meter');
  const messages = meter.createObservableCounter(instrumentNames.messages, { description: 'Messages sent into and received out of a shmchan channel', unit: '{message}' });
  const bytes = meter.createObservableCounter(instrumentNames.bytes, { description: 'Bytes of the messages sent into and received out of a shmchan channel', unit: 'By' });
  const fill = meter.createObservableGauge(instrumentNames.fill, { description: "The share of a shmchan channel's ring in use", unit: '1' });
  const lag = meter.createObservableGauge(instrumentNames.lag, { description: 'Messages sent into a shmchan channel and not yet received', unit: '{message}' });
  const observables: Observable[] = [messages, bytes, fill, lag];
  const report = (result: BatchObservableResult) => {
    for (const c of listDetails()) {
      if (filter !== undefined && !filter({ name: c.name, backend: c.backend })) continue;
      const at = attributesOf(c);
      result.observe(messages, c.messagesSent, { ...at, 'shmchan.direction': 'sent' });
      result.observe(messages, c.messagesReceived, { ...at, 'shmchan.direction': 'received' });
      result.observe(bytes, c.bytesSent, { ...at, 'shmchan.direction': 'sent' });
      result.observe(bytes, c.bytesReceived, { ...at, 'shmchan.direction': 'received' });
      result.observe(fill, c.used / c.capacity, at);
      result.observe(lag, Math.max(0, c.messagesSent - c.messagesReceived), at);
    }
  };
  meter.addBatchObservableCallback(report, observables);
  return { unregister: () => meter.removeBatchObservableCallback(report, observables) };
}

function attributesOf(c: ChannelDetails): Attributes {
  return { 'shmchan.channel': c.name, 'shmchan.backend': c.backend, 'shmchan.mode': c.mode };
}
