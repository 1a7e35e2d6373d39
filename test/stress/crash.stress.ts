// The bigger crash run: SHMCHAN_STRESS_CRASH_ROUNDS rounds (default 150) of
// test/hardening/crash.test.ts, 2 to 4 kills each, with more messages.
import { afterEach, expect, it } from 'vitest';
import { cleanupChannels, killFixtures } from '../helpers';
import { crashRound } from '../hardening/crash';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const ROUNDS = Number(process.env.SHMCHAN_STRESS_CRASH_ROUNDS ?? 150);

it(`crash harness, ${ROUNDS} rounds`, async () => {
  const total = { consumer: 0, producer: 0, delivered: 0, taken: 0 };
  for (let seed = 1000; seed < 1000 + ROUNDS; seed++) {
    const round = await crashRound(seed, 4000);
    total.consumer += round.kills.consumer;
    total.producer += round.kills.producer;
    total.delivered += round.delivered;
    total.taken += round.takenByKilledConsumers;
  }
  // 2 to 4 kills a round: the default run kills at least 100 times
  expect(total.consumer + total.producer).toBeGreaterThanOrEqual(Math.min(100, ROUNDS));
  console.log(
    `crash: ${ROUNDS} rounds, ${total.consumer + total.producer} kills (${total.consumer} consumers, ${total.producer} producers), ` +
      `${total.delivered} messages delivered, ${total.taken} taken by killed consumers between receive() and their log`,
  );
});
