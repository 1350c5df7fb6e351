/**
 * A kill -9 harness for save paths. A child process saves version after version of something into one place and
 * prints `saved <v>` after each save returns; the harness kills it (SIGKILL) and then checks what is on disk:
 * it must load, hold one version whole (never a mix), and that version must be the last one acknowledged or the
 * one being saved (nothing lost). Two ways to kill:
 *
 *  - at random times while the child saves in a loop;
 *  - at every file-system write point of one save: a preload script counts the child's mutating calls
 *    (open, write, fsync, rename, rm, mkdir, ...) after its first save and kills it at the k-th, for every k
 *    (a write killed at its point is cut in half first, to leave a torn file).
 *
 * The child script calls runCrashChild(save); the test calls runCrashHarness with a verify function that loads
 * the saved thing the way a user would and returns its version (throwing when it is corrupt or mixed).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../runtime/random';

/** Options of {@link runCrashHarness}: the child script, its target, how to verify a load, and how many kills. */
export interface CrashHarnessOptions {
  /** The child script (`node script <target> <version>`); it calls runCrashChild. */
  script: string;
  /** The file or folder the child saves into (created fresh by the caller; the harness does not remove it). */
  target: string;
  /** Loads `target` as a user would and returns the version it holds, or null when nothing was ever saved. Throws when corrupt or mixed. */
  verify: (target: string) => Promise<number | null>;
  /** Kills at random times (default 0). */
  randomKills?: number;
  /** Kill at every `sweepStride`-th write point of one save (1 = every point; default 1; 0 = no sweep). */
  sweepStride?: number;
  /** Random kills land uniformly within this many ms after the child's first save (default 1500). */
  maxDelayMs?: number;
  /** Seed of the random kill times (default 1). */
  seed?: number;
  /** Lists leftovers in `target` after a verify (temporaries, staging folders); must come back empty. */
  leftovers?: (target: string) => string[];
  /** Extra environment for the child. */
  env?: Record<string, string>;
}

/** What {@link runCrashHarness} observed; `failures` is empty when the save path is crash-safe. */
export interface CrashReport {
  /** Children killed in total. */
  kills: number;
  /** Write points in one save (the sweep's range). */
  writePoints: number;
  /** Kills after which the loaded version was the one being saved (the save had committed). */
  landedNew: number;
  /** Kills after which the loaded version was the last acknowledged one. */
  keptOld: number;
  /** One line per violation: corrupt or mixed loads, lost versions, leftovers. Empty when the path is crash-safe. */
  failures: string[];
}

/**
 * Random kills a crash test runs per save path: CHIMERA_CRASH_KILLS when set (`npm run crash` sets 50), else
 * `reduced` (CI's count). With the full count every write point is killed too (`sweepStride` 1); `full` says
 * which count applies.
 */
export function crashBudget(reduced: { randomKills: number; sweepStride: number }): { randomKills: number; sweepStride: number; full: boolean } {
  const raw = process.env.CHIMERA_CRASH_KILLS;
  if (raw === undefined || raw === '') return { ...reduced, full: false };
  const kills = Number(raw);
  if (!(Number.isInteger(kills) && kills > 0)) throw new Error(`CHIMERA_CRASH_KILLS must be a positive integer, got ${JSON.stringify(raw)}`);
  return { randomKills: kills, sweepStride: 1, full: true };
}

/** Runs the harness; see the file comment. Failures are collected, not thrown, so a test can report them all. */
export async function runCrashHarness(options: CrashHarnessOptions): Promise<CrashReport> {
  const preload = writePreload();
  const report: CrashReport = { kills: 0, writePoints: 0, landedNew: 0, keptOld: 0, failures: [] };
  let version = 0;
  try {
    // Count the write points of one save (a child that is armed but never killed).
    const counting = await runChild(options, preload, version + 1, { count: true });
    if (counting.exitCode !== 0 || counting.writePoints === null) {
      throw new Error(`crash harness: the counting child of ${options.script} failed (exit ${counting.exitCode}):\n${counting.stderr}`);
    }
    report.writePoints = counting.writePoints;
    version = await check(options, report, counting.acknowledged, 'count run');

    const stride = options.sweepStride ?? 1;
    const points: Array<{ killAt?: number; delayMs?: number; label: string }> = [];
    if (stride > 0) for (let k = 1; k <= report.writePoints; k += stride) points.push({ killAt: k, label: `write point ${k}/${report.writePoints}` });
    const rng = new Rng(options.seed ?? 1);
    for (let i = 0; i < (options.randomKills ?? 0); i++) {
      const delayMs = Math.floor(rng.next() * (options.maxDelayMs ?? 1500));
      points.push({ delayMs, label: `random kill ${i + 1} at ${delayMs} ms` });
    }
    for (const point of points) {
      const run = await runChild(options, preload, version + 1, point);
      if (!run.killed) {
        report.failures.push(`${point.label}: the child was not killed (exit ${run.exitCode}): ${run.stderr.slice(-500)}`);
        continue;
      }
      report.kills++;
      version = await check(options, report, run.acknowledged, point.label);
    }
  } finally {
    rmSync(preload, { recursive: true, force: true });
  }
  return report;
}

/** One line for a test's log: kills, write points, how many landed the new version or kept the old, failures (one line each after). */
export function crashSummary(report: CrashReport, label: string): string {
  return [
    `[crash] ${label}: ${report.kills} kills (${report.writePoints} write points a save), ` +
      `${report.landedNew} landed the new version, ${report.keptOld} kept the old, ${report.failures.length} failures`,
    ...report.failures.map((failure) => `[crash]   ${failure}`),
  ].join('\n');
}

/** Loads after a kill, checks the version against what the child acknowledged, and lists leftovers. */
async function check(options: CrashHarnessOptions, report: CrashReport, acknowledged: number, label: string): Promise<number> {
  let loaded: number | null;
  try {
    loaded = await options.verify(options.target);
  } catch (error) {
    report.failures.push(`${label}: the saved data does not load cleanly: ${(error as Error).message.split('\n')[0]}`);
    return acknowledged + 1;
  }
  if (loaded === null || loaded < acknowledged) {
    report.failures.push(`${label}: lost: version ${acknowledged} was acknowledged but ${loaded === null ? 'nothing' : `version ${loaded}`} loads`);
  } else if (loaded > acknowledged + 1) {
    report.failures.push(`${label}: version ${loaded} loads, but only ${acknowledged} was acknowledged and ${acknowledged + 1} was being saved`);
  } else if (loaded === acknowledged + 1) report.landedNew++;
  else report.keptOld++;
  const left = options.leftovers?.(options.target) ?? [];
  if (left.length) report.failures.push(`${label}: leftovers after a load: ${left.join(', ')}`);
  return Math.max(loaded ?? 0, acknowledged);
}

interface ChildRun {
  exitCode: number | null;
  killed: boolean;
  acknowledged: number;
  writePoints: number | null;
  stderr: string;
}

function runChild(
  options: CrashHarnessOptions,
  preload: string,
  firstVersion: number,
  plan: { count?: boolean; killAt?: number; delayMs?: number },
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { ...process.env, ...options.env } as Record<string, string>;
    if (plan.count) env.CHIMERA_CRASH_COUNT = '1';
    if (plan.killAt) env.CHIMERA_CRASH_AT = String(plan.killAt);
    const child = spawn(process.execPath, ['--require', join(preload, 'preload.cjs'), options.script, options.target, String(firstVersion)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let acknowledged = firstVersion - 1;
    let writePoints: number | null = null;
    let stderr = '';
    let buffered = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        const saved = /^saved (\d+)$/.exec(line);
        if (saved) {
          acknowledged = Math.max(acknowledged, Number(saved[1]));
          // The first acknowledged save starts the random clock.
          if (plan.delayMs !== undefined && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), plan.delayMs);
        }
        const points = /^write-points (\d+)$/.exec(line);
        if (points) writePoints = Number(points[1]);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // A child that neither dies nor finishes within a minute is a hang: kill it and report.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      resolve({ exitCode, killed: signal === 'SIGKILL', acknowledged, writePoints, stderr });
    });
  });
}

/**
 * The child's side: saves `firstVersion`, then (armed) saves on. With CHIMERA_CRASH_COUNT it stops after one
 * armed save and prints how many write points it made; with CHIMERA_CRASH_AT=k the preload kills it at the k-th.
 * Prints `saved <v>` after each save returns.
 */
export async function runCrashChild(save: (target: string, version: number) => Promise<void>): Promise<void> {
  const target = process.argv[2];
  let version = Number(process.argv[3]);
  if (!target || !Number.isInteger(version)) throw new Error('runCrashChild: usage: node <script> <target> <first version>');
  await save(target, version);
  acknowledgeSave(version);
  armCrashPoints();
  for (;;) {
    version++;
    await save(target, version);
    acknowledgeSave(version);
  }
}

/**
 * For a child with its own loop (a Trainer's fit): tells the harness that `version` is durably saved. Once
 * armed, in counting mode, the second acknowledgement ends the child after printing its write-point count.
 */
export function acknowledgeSave(version: number): void {
  process.stdout.write(`saved ${version}\n`);
  const hooks = crashHooks();
  if (hooks?.armed() && process.env.CHIMERA_CRASH_COUNT) {
    process.stdout.write(`write-points ${hooks.count()}\n`);
    process.exit(0);
  }
}

/** Starts counting write points (call after the first acknowledged save). */
export function armCrashPoints(): void {
  crashHooks()?.arm();
}

function crashHooks(): { arm(): void; armed(): boolean; count(): number } | undefined {
  return (globalThis as { __chimeraCrash?: { arm(): void; armed(): boolean; count(): number } }).__chimeraCrash;
}

/** Lists the names under `dir` (recursively) that look like leftovers of interrupted saves. */
export function saveLeftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (folder: string, prefix: string) => {
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const name = entry.name;
      if (/^\.chimera-(staging-|commit\.json|save\.lock)|\.tmp-\d+-|\.deleting-|\.old-\d+-/.test(name)) out.push(prefix + name);
      else if (entry.isDirectory()) walk(join(folder, name), `${prefix}${name}/`);
    }
  };
  walk(dir, '');
  return out;
}

/** The preload that counts write points and kills at the chosen one (CommonJS, so `--require` loads it). */
function writePreload(): string {
  const dir = mkdtempSync(join(tmpdir(), 'chimera-crash-'));
  writeFileSync(join(dir, 'preload.cjs'), PRELOAD);
  return dir;
}

const PRELOAD = `
'use strict';
const fsp = require('node:fs').promises;
const killAt = Number(process.env.CHIMERA_CRASH_AT || 0);
let armed = false;
let count = 0;
const die = () => process.kill(process.pid, 'SIGKILL');
function point() {
  if (!armed) return;
  count++;
  if (killAt && count === killAt) die();
}
globalThis.__chimeraCrash = { arm() { armed = true; count = 0; }, armed: () => armed, count: () => count };
for (const name of ['writeFile', 'appendFile', 'rename', 'rm', 'rmdir', 'unlink', 'mkdir', 'link', 'copyFile', 'open']) {
  const original = fsp[name];
  fsp[name] = async function (...args) {
    point();
    const result = await original.apply(this, args);
    if (name === 'open') patchHandle(result);
    return result;
  };
}
let handlePatched = false;
function patchHandle(handle) {
  if (handlePatched) return;
  handlePatched = true;
  const proto = Object.getPrototypeOf(handle);
  for (const name of ['write', 'writeFile', 'sync', 'datasync', 'close']) {
    const original = proto[name];
    proto[name] = async function (...args) {
      if (name === 'write' && armed && killAt && count + 1 === killAt && ArrayBuffer.isView(args[0])) {
        // Leave a torn file: write half of this chunk, then die.
        const [buffer, offset = 0, length = buffer.byteLength - offset] = args;
        if (length > 1) await original.call(this, buffer, offset, Math.floor(length / 2));
        die();
      }
      point();
      return original.apply(this, args);
    };
  }
}
require('node:module').syncBuiltinESMExports();
`;
