// The shmchan command line. The first argument names the command; the command
// parses the rest with node:util parseArgs in strict mode. Exit status: 0 on
// success, 1 on a runtime error (one line on stderr), 2 on bad usage.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { bench } from './bench';
import { bridge } from './bridge';
import { call } from './call';
import { ls, rm, stat } from './channels';
import { UsageError, oneLine, out, type Command, type Values } from './command';
import { demo } from './demo';
import { recv, send } from './pipe';
import { top } from './top';

const commands: Record<string, Command> = { ls, stat, rm, send, recv, top, demo, bridge, bench, call };

const usage = `usage: shmchan <command> [options]

commands:
${Object.values(commands)
  .map((c) => `  ${c.synopsis}`)
  .join('\n')}

'shmchan <command> --help' describes a command; 'shmchan --version' prints the version.
Exit status: 0 on success, 1 on a runtime error, 2 on bad usage.
`;
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '-h' || name === '--help' || name === 'help') {
    out(usage);
    return 0;
  }
  if (name === '-v' || name === '--version') {
    out(`${version()}\n`);
    return 0;
  }
  if (name === undefined) {
    process.stderr.write(usage);
    return 2;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    process.stderr.write(`shmchan: unknown command '${name}' (see 'shmchan --help')\n`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      out(command.help);
      return 0;
    }
    return await command.run(values as Values, positionals);
  } catch (error) {
    const { code } = error as { code?: string };
    const usageError =
      error instanceof UsageError || code === 'ERR_INVALID_NAME' || (code !== undefined && code.startsWith('ERR_PARSE_ARGS_'));
    if (!usageError) {
      process.stderr.write(`shmchan ${name}: ${oneLine(error)}\n`);
      return 1;
    }
    process.stderr.write(`shmchan ${name}: ${oneLine(error)} (see 'shmchan ${name} --help')\n`);
    return 2;
  }
}

/** The package's version, from its package.json (dist/cli/ is two levels below it). */
function version(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}
