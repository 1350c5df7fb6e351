// What every command declares: its flags (node:util parseArgs options), how many paths it takes, its help text,
// and `run`. The dispatcher (cli.ts) turns parse failures into the command's usage on stderr and exit code 2.
import type { ParseArgsConfig } from 'node:util';

/** A stream the CLI writes text to; process.stdout and process.stderr fit. */
export interface TextSink {
  /** Writes `text` as given (the CLI adds its own newlines). */
  write(text: string): unknown;
}

/** Where a command writes. process.stdout / process.stderr fit; tests and embedders can pass their own. */
export interface CliIO {
  /** Results (summaries, generated text, written paths). */
  stdout: TextSink;
  /** Usage, errors and progress. */
  stderr: TextSink;
}

/** Parsed flags by name (node:util parseArgs's `values`): strings, booleans, or lists of them for repeated flags. */
export type FlagValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** What a command's `run` receives: its flags and its positional arguments (paths). */
export interface ParsedCommandArgs {
  /** The flags given, by name without the dashes. */
  values: FlagValues;
  /** The arguments that are not flags, in order. */
  positionals: string[];
}

/** How many positional arguments a command takes, and how its usage names them. */
export interface PositionalArity {
  /** Fewest accepted. */
  min: number;
  /** Most accepted. */
  max: number;
  /** Their names in messages, e.g. `<input> <output>`. */
  names: string;
}

/** One `chimera <name>` command. */
export interface Command {
  /** The word after `chimera`. */
  name: string;
  /** One line for `chimera --help`. */
  summary: string;
  /** The full `chimera <name> --help` text: synopsis, arguments, flags, examples. */
  help: string;
  /** Its flags, as node:util parseArgs options (`--help` is added for every command). */
  options: NonNullable<ParseArgsConfig['options']>;
  /** How many positional arguments the command takes. */
  positionals: PositionalArity;
  /** Returns the exit code (0 on success). Throws UsageError for a bad combination of flags, Error for a failure. */
  run(args: ParsedCommandArgs, io: CliIO): Promise<number>;
}

/** A mistake in how the command was called: the usage goes to stderr and the exit code is 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
