// The bigger corruption run: SHMCHAN_STRESS_CORRUPTION_ROUNDS rounds (default 1000) of
// test/hardening/corruption.test.ts, with longer rounds and more scribbles.
import { afterEach, expect, it } from 'vitest';
import { cleanupChannels, killFixtures } from '../helpers';
import { CorruptionRig } from '../hardening/corruption';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const ROUNDS = Number(process.env.SHMCHAN_STRESS_CORRUPTION_ROUNDS ?? 1000);

it(`random corruption, ${ROUNDS} rounds`, async () => {
  const rig = new CorruptionRig();
  const first = Number(process.env.SHMCHAN_STRESS_SEED ?? 1000);
  for (let seed = first; seed < first + ROUNDS; seed++) await rig.round(seed, 400, 1 + (seed % 12));
  await rig.stop();
  expect(rig.codes()).toContain('ERR_CORRUPT');
  console.log(`corruption: ${rig.tally.rounds} rounds, ${rig.tally.calls} calls`);
  console.log(`outcomes: ${JSON.stringify(rig.tally.outcomes)}`);
  console.log(`scribbles: ${JSON.stringify(rig.tally.scribbles)}`);
});
