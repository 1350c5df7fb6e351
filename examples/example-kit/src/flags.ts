/**
 * Command-line flags for the example scripts: node's parseArgs in strict mode, where `--help` prints the usage
 * and a flag the script does not know (or a value it cannot read) prints what was wrong and the usage on stderr
 * and exits with code 2, the convention for usage errors, instead of a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A flag's value that the script cannot use; the script runner prints it with the usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
/** The parsed values, typed from the option declarations as node's parseArgs types them. */
export type FlagValues<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

export interface FlagsConfig<O extends Options> {
  /** The usage text printed by --help and after a usage error. */
  usage: string;
  options: O;
  /** The arguments to parse (default: process.argv after the script). */
  args?: string[];
}

/** Where parseFlags writes and how it ends the process; tests pass their own. */
export interface ScriptIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  exit: (code: number) => never;
}

export const processIO: ScriptIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  exit: (code) => process.exit(code),
};

/**
 * Parses the flags (with `--help`/`-h` added). `--help` prints the usage and exits 0; an unknown flag, a
 * missing value or a stray positional argument prints the problem and the usage on stderr and exits 2.
 */
export function parseFlags<O extends Options>(config: FlagsConfig<O>, io: ScriptIO = processIO): FlagValues<O> {
  const options: Options = { ...config.options, help: { type: 'boolean', short: 'h' } };
  let parsed;
  try {
    parsed = parseArgs({ args: config.args, options, strict: true, allowPositionals: false });
  } catch (error) {
    if (isParseArgsError(error)) usageExit(error.message, config.usage, io);
    throw error;
  }
  if (parsed.values.help) {
    io.stdout(`${config.usage}\n`);
    io.exit(0);
  }
  return parsed.values as FlagValues<O>;
}

/** Prints a usage error (the message, then the usage) on stderr and exits 2. */
export function usageExit(message: string, usage: string, io: ScriptIO = processIO): never {
  io.stderr(`${message}\n\n${usage}\n`);
  return io.exit(2);
}

function isParseArgsError(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** An integer flag (>= `min`, default no bound). */
export function int(name: string, text: string, min = -Infinity): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`--${name} must be ${min === 0 ? 'a non-negative integer' : min > -Infinity ? `an integer >= ${min}` : 'an integer'}, got '${text}'`);
  }
  return value;
}

/** An integer flag that may be absent. */
export function optionalInt(name: string, text: string | undefined, min = -Infinity): number | undefined {
  return text === undefined ? undefined : int(name, text, min);
}

/** A positive finite number (learning rates, weights). */
export function positive(name: string, text: string): number {
  const value = Number(text);
  if (!(value > 0 && Number.isFinite(value))) throw new UsageError(`--${name} must be a positive number, got '${text}'`);
  return value;
}

/** A number in [0, 1]. */
export function fraction(name: string, text: string): number {
  const value = Number(text);
  if (!(value >= 0 && value <= 1)) throw new UsageError(`--${name} must be a fraction in [0, 1], got '${text}'`);
  return value;
}

/** One of a fixed set of words. */
export function oneOf<T extends string>(name: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${name} must be ${choices.join(' or ')}, got '${text}'`);
  return text as T;
}
