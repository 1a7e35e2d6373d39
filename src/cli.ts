// The shmchan command line. Commands are added as they are built; each parses
// its own arguments with node:util parseArgs.
import { parseArgs } from 'node:util';
import { runDemo } from './demo';
import { bridgeHelp, runBridgeCommand } from './bridge-cli';

const usage = `usage: shmchan <command> [options]

commands:
  demo      the spooler: one consumer and several producer processes
  bridge    connect a channel to a NATS subject (--to or --from nats://HOST:PORT/SUBJECT)

options:
  -h, --help   show this help
`;

const commands: Record<string, { help: string; run(args: string[]): Promise<number> }> = {
  demo: {
    help: 'usage: shmchan demo\n\nThe spooler: starts one spooler process and four client processes that share\nonly an mpsc channel name; the spooler prints jobs in arrival order and a summary.\n',
    run: async (args) => {
      parseArgs({ args, options: {}, strict: true });
      return runDemo();
    },
  },
  bridge: { help: bridgeHelp, run: runBridgeCommand },
};

/** Runs the CLI; resolves with the exit status (0 ok, 1 runtime error, 2 bad usage). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help') {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`shmchan: unknown command '${name}'\n${usage}`);
    return 2;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(command.help);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`shmchan ${name}: ${message}\n`);
      return 2;
    }
    process.stderr.write(`shmchan ${name}: ${message}\n`);
    return 1;
  }
}
