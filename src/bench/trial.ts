// One process (or worker thread) of a trial. The runner starts the main one as
//   node dist/bench/trial.js SPEC_JSON
// and it prints one line of JSON with what it measured; the main one starts
// the peers the same way (with role 'peer'), or as worker threads.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openMain, openPeer, type TrialSpec } from './drivers';
import { scenarios } from './scenarios';
import { reportResult, runTrialProcess } from './trial-process';

const spec = (isMainThread ? JSON.parse(process.argv[2]) : workerData) as TrialSpec;
const scenario = scenarios[spec.scenario];

async function runMain(): Promise<void> {
  let result;
  if (scenario.alone !== undefined) result = await scenario.alone(spec);
  else {
    const side = await openMain(spec);
    try {
      result = { ...(await scenario.main(side, spec)), ...side.facts };
    } finally {
      await side.close();
    }
  }
  reportResult(result);
}

async function runPeer(): Promise<void> {
  await scenario.peer!(await openPeer(spec, parentPort), spec);
}

if (spec.role === 'peer') runTrialProcess(`bench peer (${spec.mechanism}, ${spec.scenario})`, runPeer);
else runTrialProcess(`bench trial (${spec.mechanism}, ${spec.scenario}, ${spec.message})`, runMain);
