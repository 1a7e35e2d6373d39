// shmchan/otel: every channel's messages, bytes, fill and lag as OpenTelemetry
// observable instruments, read by the SDK's own metric reader, for a channel that
// a separate producer process filled and this process partly drained.
import { execFileSync } from 'node:child_process';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { registerMetrics, instrumentNames } from '../dist/otel.js';
import { backends, cleanupChannels, killFixtures, packageRoot, uniqueName, using, type Backend } from './helpers';

/** A reader that collects when asked: the SDK's collect() path with no exporter or timer. */
class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

/** Every data point of one channel: `instrument direction?` -> value. */
function pointsOf(collected: ResourceMetrics, channel: string, backend: Backend): Record<string, number> {
  const points: Record<string, number> = {};
  for (const scope of collected.scopeMetrics)
    for (const metric of scope.metrics)
      for (const point of metric.dataPoints as { attributes: Record<string, unknown>; value: number }[]) {
        if (point.attributes['shmchan.channel'] !== channel || point.attributes['shmchan.backend'] !== backend) continue;
        const direction = point.attributes['shmchan.direction'];
        points[`${metric.descriptor.name}${direction === undefined ? '' : ` ${direction}`}`] = point.value;
        expect(point.attributes['shmchan.mode']).toBe('spsc');
      }
  return points;
}

const rawLength = (i: number) => (i * 37) % 1500; // test/fixtures/messages.mjs rawMessage
const sum = (n: number) => Array.from({ length: n }, (_, i) => rawLength(i)).reduce((a, b) => a + b, 0);

describe.each(backends)('%s', (backend: Backend) => {
  const { create, runFixture } = using(backend);

  it('reports messages and bytes sent and received, fill and lag per channel; unregister stops it', async () => {
    const name = uniqueName('otel');
    const channel = create<Buffer>(name, { capacity: 256 * 1024, codec: 'raw' });
    const reader = new CollectingReader();
    const provider = new MeterProvider({ readers: [reader] });
    try {
      await runFixture('producer.mjs', [name, '100', 'raw']); // another process sends 100 and ends
      for (let i = 0; i < 60; i++) expect(channel.receiveSync({ timeout: 10_000 }).length).toBe(rawLength(i));
      const registration = registerMetrics({ meter: provider.getMeter('test') });
      const { resourceMetrics, errors } = await reader.collect();
      expect(errors).toEqual([]);
      const stats = channel.stats();
      expect(pointsOf(resourceMetrics, name, backend)).toEqual({
        [`${instrumentNames.messages} sent`]: 100,
        [`${instrumentNames.messages} received`]: 60,
        [`${instrumentNames.bytes} sent`]: sum(100),
        [`${instrumentNames.bytes} received`]: sum(60),
        [instrumentNames.fill]: stats.used / stats.capacity,
        [instrumentNames.lag]: 40,
      });
      expect(stats.used).toBeGreaterThan(0);

      // after unregister the channel is no longer read: the SDK keeps its last values
      registration.unregister();
      for (let i = 60; i < 70; i++) channel.receiveSync({ timeout: 10_000 });
      expect(pointsOf((await reader.collect()).resourceMetrics, name, backend)[`${instrumentNames.messages} received`]).not.toBe(70);
    } finally {
      await provider.shutdown();
      channel.close();
    }
  });
});

it("uses the global meter provider's meter when none is passed, and a filter picks channels", async () => {
  const { create } = using('posix');
  const [shown, hidden] = [uniqueName('otel-shown'), uniqueName('otel-hidden')];
  const channels = [create(shown, { capacity: 4096 }), create(hidden, { capacity: 4096 })];
  const reader = new CollectingReader();
  const provider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(provider);
  try {
    channels[0].sendSync('one');
    const registration = registerMetrics({ filter: ({ name }) => name === shown });
    const { resourceMetrics } = await reader.collect();
    expect(resourceMetrics.scopeMetrics.map((s) => s.scope.name)).toEqual(['shmchan']);
    expect(pointsOf(resourceMetrics, shown, 'posix')).toMatchObject({ [`${instrumentNames.messages} sent`]: 1, [instrumentNames.lag]: 1 });
    expect(pointsOf(resourceMetrics, hidden, 'posix')).toEqual({});
    registration.unregister();
    expect(() => registerMetrics({ meter: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => registerMetrics({ metre: undefined } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  } finally {
    metrics.disable();
    await provider.shutdown();
    for (const channel of channels) channel.close();
  }
});

it('loads from ESM and CommonJS as the same function, with a clear error when @opentelemetry/api is missing and no meter is passed', () => {
  const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: packageRoot, encoding: 'utf8' }).trim();
  const script = "import { registerMetrics } from 'shmchan/otel'; import { createRequire } from 'node:module'; console.log(typeof registerMetrics, registerMetrics === createRequire(import.meta.url)('shmchan/otel').registerMetrics)";
  expect(run(['--input-type=module', '-e', script])).toBe('function true');
  // the peer dependency hidden: Module._resolveFilename refuses it
  const hide = "const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (id, ...rest) { if (id === '@opentelemetry/api') throw Object.assign(new Error('Cannot find module ' + id), { code: 'MODULE_NOT_FOUND' }); return r.call(this, id, ...rest); };";
  const missing = `${hide} const { registerMetrics } = require('shmchan/otel'); try { registerMetrics(); } catch (e) { console.log(e.code, e.message); }`;
  expect(run(['-e', missing])).toMatch(/^MODULE_NOT_FOUND shmchan\/otel needs @opentelemetry\/api when no meter is passed: npm install @opentelemetry\/api/);
});
