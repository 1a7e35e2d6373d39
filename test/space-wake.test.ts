// Producers sleeping for room are woken once a quarter of the ring is free or the
// ring is empty (src/ring.ts SpaceWaker); a consumer that frees less and stops must
// still let them through, by the sleepers' own periodic look.
import { afterEach, describe, expect, it } from 'vitest';
import { backends, cleanupChannels, killFixtures, uniqueName, using } from './helpers';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

describe.each(backends)('%s', (backend) => {
  const b = using(backend);

  for (const mode of ['spsc', 'mpsc'] as const)
    it(`${mode}: a send waiting for room completes when the consumer frees two records and stops`, async () => {
      const name = uniqueName(`space-wake-${mode}`);
      const channel = b.create(name, { capacity: 4096, mode, codec: 'raw', spinMicros: 0 });
      const consumer = b.open(name, { codec: 'raw' });
      try {
        const message = (i: number) => Buffer.alloc(100, i);
        let sent = 0;
        while (channel.trySend(message(sent))) sent++;
        const waiting = channel.send(message(sent), { timeout: 10_000 }); // the hang guard, not a speed limit
        await new Promise((resolve) => setTimeout(resolve, 20)); // let it go to sleep
        // 2 × 112 of 4096 bytes: room for the message (spsc keeps 8 bytes of slack), but no wake-up
        expect(consumer.tryReceive()).toEqual(message(0));
        expect(consumer.tryReceive()).toEqual(message(1));
        await waiting;
        for (let i = 2; i <= sent; i++) expect(consumer.tryReceive()).toEqual(message(i));
        expect(consumer.tryReceive()).toBeUndefined();
      } finally {
        consumer.close();
        channel.close();
      }
    });
});
