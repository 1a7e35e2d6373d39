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
