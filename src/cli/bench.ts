// `shmchan bench`: the benchmark runner (src/bench), behind the CLI's parser.
import { UsageError, expectPositionals, type Command } from './command';

export const bench: Command = {
  synopsis: 'bench [--quick] [--json] [--svg FILE]  shmchan against pipe, unix socket, child_process IPC, MessagePort',
  help: `usage: shmchan bench [--quick] [--json | --markdown] [--svg FILE] [--only REGEX]

Measures shmchan (POSIX and System V, spsc and mpsc, and POSIX spsc with
records: true for objects) against a pipe (FIFO), a unix socket, child_process
IPC ('json' and 'advanced') and a worker_threads MessagePort, each trial in
fresh processes: round-trip latency, one-way and 4-producer throughput, the
wake-up of a receiver that was asleep, the CPU of a receiver parked on an empty
channel, and msgpackr alone. Prints a table per scenario with each mechanism's
ratio to the unix socket, then the speed targets (informational: a missed
target is not an error). A progress line goes to stderr.

  --quick        shorter trials and fewer message sizes: under a minute
  --json         print the results as JSON instead of tables
  --markdown     print the tables as Markdown (the README's benchmarks section)
  --svg FILE     also write a chart of round-trip p50 and throughput to FILE
  --only REGEX   run only the trials whose scenario/message/mechanism matches,
                 e.g. 'pingpong/small' or 'shmchan-posix|unix'
  -h, --help     show this help

The full run takes a few minutes. Exit status 1 if a trial failed.
`,
  options: {
    quick: { type: 'boolean' },
    json: { type: 'boolean' },
    markdown: { type: 'boolean' },
    svg: { type: 'string' },
    only: { type: 'string' },
  },
  run: async (values, positionals) => {
    expectPositionals(positionals, 0, '');
    if (values.json && values.markdown) throw new UsageError('--json and --markdown exclude each other');
    // loaded here, so that the other commands never load the runner
    const { runBench } = await import('../bench/run.js');
    try {
      return await runBench(values);
    } catch (error) {
      if ((error as { usage?: boolean }).usage) throw new UsageError((error as Error).message);
      throw error;
    }
  },
};
