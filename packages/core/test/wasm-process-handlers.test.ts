// After initBackend() starts wasm, an application's uncaught error must behave as without it: Node prints the
// application's own stack and exits with code 1 (tfjs's emscripten glue made it exit 7 from inside the glue).
// Each case is a fresh Node process on the built package, since the glue's handlers are installed once per process.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { withoutAddedProcessHandlers } from '../src/runtime/process-handlers';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

function runAfterWasm(threads: 1 | 2, failure: string): { status: number | null; stderr: string; stdout: string } {
  const script = `
    const core = require('@chimera/core');
    core.initBackend({ backend: 'wasm', threads: ${threads} }).then((report) => {
      console.log(JSON.stringify({
        backend: report.backend,
        threads: report.threads,
        uncaughtException: process.listenerCount('uncaughtException'),
        unhandledRejection: process.listenerCount('unhandledRejection'),
      }));
      ${failure}
    });`;
  const child = spawnSync(process.execPath, ['-e', script], { cwd: packageDir, encoding: 'utf8', timeout: 120_000 });
  return { status: child.status, stderr: child.stderr, stdout: child.stdout };
}

describe('uncaught errors after initBackend picks wasm', () => {
  it('an uncaught throw prints the application stack and exits 1 (single-threaded wasm)', () => {
    const run = runAfterWasm(1, `setTimeout(function applicationTimer() { throw new Error('application failure 41'); }, 0);`);
    expect(JSON.parse(run.stdout.trim())).toEqual({
      backend: 'wasm',
      threads: 1,
      uncaughtException: 0,
      unhandledRejection: 0,
    });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).not.toMatch(/tfjs-backend-wasm/);
    expect(run.stderr).toMatch(/^\[eval\]:\d+\n.*throw new Error\('application failure 41'\)/);
    expect(run.stderr).toMatch(/Error: application failure 41\n\s+at (Timeout\.)?applicationTimer/);
  });

  it('an unhandled rejection prints the application error and exits 1 (threaded wasm)', () => {
    const run = runAfterWasm(2, `Promise.reject(new RangeError('application rejection 42'));`);
    expect(JSON.parse(run.stdout.trim())).toMatchObject({ backend: 'wasm', threads: 2, uncaughtException: 0, unhandledRejection: 0 });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).not.toMatch(/tfjs-backend-wasm/);
    expect(run.stderr).toMatch(/RangeError: application rejection 42\n\s+at /);
  });
});

describe('withoutAddedProcessHandlers', () => {
  it('removes the handlers added while it ran and keeps the ones present before', async () => {
    const before = () => {};
    const added = () => {};
    process.on('unhandledRejection', before);
    try {
      const result = await withoutAddedProcessHandlers(async () => {
        process.on('unhandledRejection', added);
        process.on('uncaughtException', added);
        return 'started';
      });
      expect(result).toBe('started');
      expect(process.listeners('unhandledRejection')).toContain(before);
      expect(process.listeners('unhandledRejection')).not.toContain(added);
      expect(process.listeners('uncaughtException')).not.toContain(added);
    } finally {
      process.removeListener('unhandledRejection', before);
      process.removeListener('unhandledRejection', added);
      process.removeListener('uncaughtException', added);
    }
  });
});
