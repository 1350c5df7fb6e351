/**
 * @chimera/cli: the `chimera` command line (summary, plot, convert, generate). `main` runs a command line and
 * returns its exit code, so the commands can be scripted from Node as well as from the shell.
 *
 * @packageDocumentation
 */
export { main } from './cli';
export { UsageError, type CliIO, type Command, type FlagValues, type ParsedCommandArgs, type PositionalArity, type TextSink } from './command';
export { COMMANDS } from './commands/index';
