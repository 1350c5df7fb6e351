// The dispatcher: `chimera <command> [flags] [paths]`. Flags are parsed strictly (node:util parseArgs): an unknown
// flag, a missing value or a wrong number of paths prints the command's usage on stderr and exits 2; a failure while
// running prints one line naming the command and the cause and exits 1 (the stack with CHIMERA_DEBUG=1).
import { parseArgs } from 'node:util';
import { UsageError, type CliIO, type Command } from './command';
import { COMMANDS } from './commands/index';

function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: chimera <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'chimera <command> --help' for a command's flags and examples.",
    '',
  ].join('\n');
}

/** Node's parseArgs failures (unknown flag, missing value, unexpected positional) carry ERR_PARSE_ARGS_* codes. */
function isParseError(error: unknown): error is Error {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** Runs the command line `argv` (without node and the script) and returns the process exit code. */
export async function main(argv: readonly string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(topUsage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.stdout.write(topic ? topic.help : topUsage());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(`chimera: unknown command ${JSON.stringify(name)}; expected one of ${COMMANDS.map((c) => c.name).join(', ')}\n\n${topUsage()}`);
    return 2;
  }
  return runCommand(command, rest, io);
}

async function runCommand(command: Command, args: string[], io: CliIO): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.stdout.write(command.help);
      return 0;
    }
    const { min, max, names } = command.positionals;
    if (positionals.length < min || positionals.length > max) {
      const expected = min === max ? `${min}` : `${min} to ${max}`;
      throw new UsageError(`expected ${expected} argument${max === 1 ? '' : 's'} (${names}), got ${positionals.length}${positionals.length ? `: ${positionals.join(' ')}` : ''}`);
    }
    return await command.run({ values, positionals }, io);
  } catch (error) {
    if (error instanceof UsageError || isParseError(error)) {
      // Node's unknown-option message goes on about positionals that start with '-'; its first sentence is the point.
      const message = isParseError(error) ? error.message.split(/(?<=\.) /)[0]! : (error as Error).message;
      io.stderr.write(`chimera ${command.name}: ${message}\n\n${command.help}`);
      return 2;
    }
    const err = error instanceof Error ? error : new Error(String(error));
    io.stderr.write(`chimera ${command.name}: ${err.message}\n`);
    if (process.env.CHIMERA_DEBUG) io.stderr.write(`${err.stack ?? ''}\n`);
    return 1;
  }
}
