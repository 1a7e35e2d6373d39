// Random corruption of live channels. For each seed, a consumer and one or two
// producers (real processes) keep calling every method of their role while a
// third process writes random and targeted garbage into the segment: cursors
// beyond the ring or ahead of each other, impossible lengths and types, forged
// claims and role words, wrong magic/version/capacity, zeroed ranges, and now
// and then a truncation. Every call must return a value or throw a ShmChanError
// with one of these codes, no process may die or hang, and nothing may be
// printed on stderr.
//
// Codes that corruption may legitimately cause, besides ERR_CORRUPT and
// ERR_INCOMPATIBLE (a wrong magic or version seen by a reopen):
//   ERR_TIMEOUT             a wait that the garbage keeps from finishing (every
//                           wait here has a timeout), or a reopen of a header
//                           whose magic was zeroed (it looks half initialised)
//   ERR_ENDED               the ended flag was set
//   ERR_PEER_GONE           the consumer's owner word now names a dead process
//   ERR_DECODE              a payload was overwritten
//   ERR_ROLE_TAKEN          an owner word now names another live process
//   ERR_TOO_MANY_PRODUCERS  the producer table is filled with live names
//   ERR_MESSAGE_TOO_LARGE   a reopen read a smaller maxMessageSize
// and ABORT_ERR for the calls that pass an AbortSignal. Anything else (for
// example ERR_ENCODE, ERR_INVALID_ARG, a RangeError) fails the test.
import { afterEach, expect, it } from 'vitest';
import { cleanupChannels, killFixtures } from '../helpers';
import { CorruptionRig } from './corruption';

afterEach(() => {
  killFixtures();
  cleanupChannels();
});

const ROUNDS = 60;

it(`keeps every process alive and every answer valid through ${ROUNDS} rounds of random corruption`, async () => {
  const rig = new CorruptionRig();
  for (let seed = 1; seed <= ROUNDS; seed++) await rig.round(seed, 300, 1 + (seed % 6));
  await rig.stop();
  // the rounds reached the interesting answers, not only timeouts
  expect(rig.codes()).toContain('ERR_CORRUPT');
  expect(rig.codes()).toContain('ok');
  console.log(`corruption: ${rig.tally.rounds} rounds, ${rig.tally.calls} calls`, JSON.stringify(rig.tally.outcomes));
});
