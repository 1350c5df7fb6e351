// What every command declares: its flags (node:util parseArgs options), how many paths it takes, its help text,
// and `run`. The dispatcher (cli.ts) turns parse failures into the command's usage on stderr and exit code 2.
import type { ParseArgsConfig } from 'node:util';

/** Where a command writes. process.stdout / process.stderr fit; tests and embedders can pass their own. */
export interface CliIO {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export type FlagValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface ParsedCommandArgs {
  values: FlagValues;
  positionals: string[];
}

export interface Command {
  name: string;
  /** One line for `chimera --help`. */
  summary: string;
  /** The full `chimera <name> --help` text: synopsis, arguments, flags, examples. */
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** How many positional arguments the command takes. */
  positionals: { min: number; max: number; names: string };
  /** Returns the exit code (0 on success). Throws UsageError for a bad combination of flags, Error for a failure. */
  run(args: ParsedCommandArgs, io: CliIO): Promise<number>;
}

/** A mistake in how the command was called: the usage goes to stderr and the exit code is 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
