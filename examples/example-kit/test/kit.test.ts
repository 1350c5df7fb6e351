// The shared scaffolding: flags end in the usage (exit 2 on stderr) rather than a stack, in-process and in a real
// process (each example's own test runs its built script the same way); the loss curve is written next to the
// metrics from the files that exist.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError, parseFlags, runScript, writeLossCurve, type ScriptIO } from '../src/index';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const viteNode = join(repoRoot, 'node_modules', '.bin', 'vite-node');
const dir = mkdtempSync(join(tmpdir(), 'chimera-kit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a TypeScript script in its own process; resolves with its exit code and output. */
function run(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(viteNode, [script, '--', ...args], { cwd: repoRoot, env: { ...process.env, CI: 'true' } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Collects what a script writes; exit throws so the code after it does not run, as after process.exit. */
function fakeIO() {
  const out = { stdout: '', stderr: '', code: undefined as number | undefined };
  const io: ScriptIO = {
    stdout: (text) => void (out.stdout += text),
    stderr: (text) => void (out.stderr += text),
    exit: (code) => {
      out.code = code;
      throw new Error(`exit ${code}`);
    },
  };
  return { out, io };
}

const USAGE = 'usage: demo [--steps N]';
const OPTIONS = { steps: { type: 'string', default: '5' } } as const;

describe('parseFlags', () => {
  it('returns the values, with defaults', () => {
    expect(parseFlags({ usage: USAGE, options: OPTIONS, args: ['--steps', '7'] }).steps).toBe('7');
    expect(parseFlags({ usage: USAGE, options: OPTIONS, args: [] }).steps).toBe('5');
  });

  it('prints the usage on stdout and exits 0 for --help and -h', () => {
    for (const flag of ['--help', '-h']) {
      const { out, io } = fakeIO();
      expect(() => parseFlags({ usage: USAGE, options: OPTIONS, args: [flag] }, io)).toThrow('exit 0');
      expect(out).toEqual({ stdout: `${USAGE}\n`, stderr: '', code: 0 });
    }
  });

  it('turns an unknown flag, a missing value or a stray argument into the message and usage on stderr, exit 2', () => {
    for (const args of [['--stpes', '7'], ['--steps'], ['extra']]) {
      const { out, io } = fakeIO();
      expect(() => parseFlags({ usage: USAGE, options: OPTIONS, args }, io)).toThrow('exit 2');
      expect(out.code).toBe(2);
      expect(out.stdout).toBe('');
      expect(out.stderr).toContain(args[0]); // what was wrong,
      expect(out.stderr.endsWith(`\n\n${USAGE}\n`)).toBe(true); // then the usage
      expect(out.stderr).not.toMatch(/ERR_PARSE_ARGS|\n\s+at /);
    }
  });

  it('runScript: a UsageError from a value check is a usage error too; a crash keeps its stack and exits 1', async () => {
    const usage = fakeIO();
    await expect(runScript(USAGE, async () => { throw new UsageError("--steps must be an integer, got 'x'"); }, usage.io)).rejects.toThrow('exit 2');
    expect(usage.out.stderr).toBe(`--steps must be an integer, got 'x'\n\n${USAGE}\n`);
    const crash = fakeIO();
    await expect(runScript(USAGE, async () => { throw new Error('boom'); }, crash.io)).rejects.toThrow('exit 1');
    expect(crash.out.stderr).toMatch(/^Error: boom\n\s+at /);
  });
});

describe('a script on the kit, as a process', () => {
  const script = fileURLToPath(new URL('./fixtures/script.ts', import.meta.url));

  it('runs, prints --help, and exits 2 with the usage for an unknown flag or a bad value', async () => {
    const [ok, help, unknown, bad] = await Promise.all([run(script, ['--steps', '4']), run(script, ['--help']), run(script, ['--bogus']), run(script, ['--steps', 'x'])]);
    expect(ok).toMatchObject({ code: 0, stdout: 'ran 4 steps\n' });
    expect(help).toMatchObject({ code: 0, stdout: 'fixture -- [--steps 3] [--fail]\n' });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--bogus'");
    expect(unknown.stderr).toContain('fixture -- [--steps 3] [--fail]');
    expect(unknown.stderr).not.toContain('ERR_PARSE_ARGS');
    expect(bad).toMatchObject({ code: 2, stderr: "--steps must be a non-negative integer, got 'x'\n\nfixture -- [--steps 3] [--fail]\n" });
  });
});

describe('writeLossCurve', () => {
  it('draws loss.png next to the metrics from the files that exist and have lines', async () => {
    const line = (step: number, loss: number) => `${JSON.stringify({ step, loss, lr: 1e-3 })}\n`;
    writeFileSync(join(dir, 'pretrain-metrics.jsonl'), [0, 1, 2, 3].map((s) => line(s, 3 - s / 2)).join(''));
    writeFileSync(join(dir, 'fusion-metrics.jsonl'), '');
    const path = await writeLossCurve(dir, [
      { name: 'pretrain', path: join(dir, 'pretrain-metrics.jsonl') },
      { name: 'fusion', path: join(dir, 'fusion-metrics.jsonl') },
      { name: 'early', path: join(dir, 'missing.jsonl') },
    ]);
    expect(path).toBe(join(dir, 'loss.png'));
    expect(readFileSync(path!).subarray(1, 4).toString()).toBe('PNG');
    expect(await writeLossCurve(dir, [{ name: 'none', path: join(dir, 'missing.jsonl') }])).toBeNull();
  });
});
