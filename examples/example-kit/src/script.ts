/**
 * The outer shell of an example script: runs `main`, turns a UsageError into the message and the usage on
 * stderr with exit code 2, any other error into its stack with exit code 1, and a returned number into the exit
 * code. `log` prints a line that starts clean when a progress bar is being drawn on the terminal.
 */
import { UsageError, processIO, usageExit, type ScriptIO } from './flags';

/** Runs an example's main function with the examples' exit codes (0 passed, 1 failed or crashed, 2 usage error). */
export function runScript(usage: string, main: () => Promise<number | void>, io: ScriptIO = processIO): Promise<void> {
  return main().then(
    (code) => {
      if (typeof code === 'number') io.exit(code);
    },
    (error: unknown) => {
      if (error instanceof UsageError) usageExit(error.message, usage, io);
      io.stderr(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      io.exit(1);
    },
  );
}

/** console.log that first clears a progress line drawn on the terminal (the Trainer draws it on stderr). */
export function log(line: string): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  console.log(line);
}
