/** For the examples' tests: runs a built example script in its own Node process and collects what it printed. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ScriptRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node <script> ...args` (CI=true, so no progress bar); rejects when the script has not been built. */
export function runBuiltScript(script: URL | string, args: readonly string[]): Promise<ScriptRun> {
  const path = script instanceof URL ? fileURLToPath(script) : script;
  if (!existsSync(path)) return Promise.reject(new Error(`${path} does not exist: build the example first (turbo builds it before its tests)`));
  return new Promise((resolve) => {
    execFile(process.execPath, [path, ...args], { env: { ...process.env, CI: 'true' } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Runs a built script with a flag it does not know and lists what is wrong with how it ended (empty when it
 * printed the problem and its usage, `--seed` among the flags, on stderr, no stack, nothing on stdout, exit 2).
 */
export async function unknownFlagProblems(script: URL | string): Promise<string[]> {
  const run = await runBuiltScript(script, ['--no-such-flag']);
  const problems: string[] = [];
  if (run.code !== 2) problems.push(`exit code ${run.code}, expected 2`);
  if (!run.stderr.includes("Unknown option '--no-such-flag'")) problems.push(`stderr does not name the flag: ${run.stderr.slice(0, 200)}`);
  if (!run.stderr.includes('--seed')) problems.push('stderr has no usage (no --seed in it)');
  if (/ERR_PARSE_ARGS|\n\s+at /.test(run.stderr)) problems.push('stderr has a stack trace');
  if (run.stdout !== '') problems.push(`stdout is not empty: ${run.stdout.slice(0, 200)}`);
  return problems;
}
