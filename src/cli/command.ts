// What every command of the CLI shares: the Command shape, usage errors (exit
// status 2) and the formatting of sizes and tables.
import type { ParseArgsConfig } from 'node:util';

/** Bad arguments: exit status 2. */
export class UsageError extends Error {}

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  /** The line in the overview. */
  synopsis: string;
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Values, positionals: string[]): Promise<number>;
}

export const out = (text: string) => process.stdout.write(text);

/** --sysv and --key: the flags of the commands that name channels, for System V ones. */
export const sysvOptions = { sysv: { type: 'boolean' }, key: { type: 'string' } } as const;

/** The help lines of --sysv and --key, their text starting at column `column`. */
export function sysvOptionsHelp(column: number): string {
  const pad = (flag: string) => `  ${flag}`.padEnd(column);
  return [
    `${pad('--sysv')}a System V channel (its key derived from its name)`,
    `${pad('--key KEY')}a System V channel of this key (decimal, or hex as`,
    `${' '.repeat(column)}ipcs shows it: 0x1234abcd); implies --sysv`,
  ].join('\n');
}

/** Where --sysv and --key say the channel is: undefined for POSIX. */
export function sysvPlace(values: Values): { backend: 'sysv'; key?: number } | undefined {
  if (values.key === undefined) return values.sysv ? { backend: 'sysv' } : undefined;
  const text = String(values.key);
  const key = /^0x[0-9a-f]{1,8}$/i.test(text) ? parseInt(text, 16) : /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(key > 0 && key <= 0xffffffff)) throw new UsageError(`--key must be a non-zero System V key such as 0x1234abcd or 305441741, got '${text}'`);
  return { backend: 'sysv', key };
}

/** File mode bits as --json prints them: an octal string such as "0600". */
export const octal = (permissions: number) => `0${permissions.toString(8).padStart(3, '0')}`;

export function formatBytes(n: number): string {
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const)
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  return `${n} B`;
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

export function expectPositionals(positionals: string[], count: number, what: string): void {
  if (positionals.length < count) throw new UsageError(`missing ${what}`);
  if (positionals.length > count) throw new UsageError(`unexpected argument '${positionals[count]}'`);
}

/** The first line of an error's message, for the one line a failed command prints. */
export function oneLine(error: unknown): string {
  const { code, message } = error instanceof Error ? (error as NodeJS.ErrnoException) : { code: undefined, message: String(error) };
  // parseArgs explains '--' at length; the option is what matters here
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${/'[^']*'/.exec(message)?.[0] ?? message}`;
  return message.split('\n')[0];
}
