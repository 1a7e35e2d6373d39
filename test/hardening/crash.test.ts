// The crash harness: in each round the consumer and the producers of a channel
// (spsc and mpsc in turn) are killed with SIGKILL at random points, 2 to 4 times,
// and replaced by new processes that must take their roles over at once. Then
// the stream is ended: nothing may hang, every message whose send returned must
// arrive exactly once and in order (except the one a consumer killed right after
// receive() returned may take with it), and the ring must be empty.
import { afterEach, expect, it } from 'vitest';
import { cleanupChannels, killFixtures } from '../helpers';
import { crashRound } from './crash';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const ROUNDS = 20;

it(`survives ${ROUNDS} rounds of producers and consumers killed at random points`, async () => {
  let consumer = 0;
  let producer = 0;
  let delivered = 0;
  for (let seed = 1; seed <= ROUNDS; seed++) {
    const round = await crashRound(seed, 1500);
    consumer += round.kills.consumer;
    producer += round.kills.producer;
    delivered += round.delivered;
  }
  expect(consumer + producer).toBeGreaterThanOrEqual(ROUNDS);
  console.log(`crash: ${ROUNDS} rounds, ${consumer} consumers and ${producer} producers killed, ${delivered} messages delivered`);
});
