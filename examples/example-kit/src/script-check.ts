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
