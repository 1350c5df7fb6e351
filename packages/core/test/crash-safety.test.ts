// kill -9 during saves: every save path of core, killed at random times and at every write point of a save,
// must leave something that loads as one whole version, never a mix, never less than what was acknowledged, and
// no leftovers once loaded. The child processes (test/crash/child.mjs) use the built package, as users do.
// CI runs reduced counts; `npm run crash` runs 50 random kills per path plus every write point.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, latestCheckpoint, loadSafetensors, loadShardedSafetensors, readTrainerState, readTrainingCheckpoint } from '@chimera/core';
import { crashBudget, crashSummary, runCrashHarness, saveLeftovers, setupTestBackend, type CrashReport } from '@chimera/core/testing';
// @ts-expect-error: a plain .mjs module shared with the child
import { crashModel } from './crash/model.mjs';

const CHILD = join(__dirname, 'crash', 'child.mjs');
const budget = crashBudget({ randomKills: 3, sweepStride: 3 });
// Each kill costs one Node start (~1 s on a loaded machine); allow 10 s a kill.
const TIMEOUT = 180_000 + (budget.full ? 150 : 40) * 10_000;
const roots: string[] = [];

beforeAll(async () => {
  await setupTestBackend('cpu');
});
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function scratch(): string {
  const root = mkdtempSync(join(tmpdir(), 'chimera-crash-'));
  roots.push(root);
  return root;
}

/** The one value every tensor holds, or an error naming the mix. */
function versionOf(tensors: Record<string, tf.Tensor>, where: string): number {
  const values = new Set<number>();
  for (const t of Object.values(tensors)) for (const v of t.dataSync()) values.add(v);
  if (values.size !== 1) throw new Error(`${where} mixes versions ${[...values].slice(0, 5).join(', ')}`);
  return [...values][0]!;
}

async function verifyWeights(target: string): Promise<number | null> {
  let contents;
  try {
    contents = await loadShardedSafetensors(target);
  } catch (error) {
    if (/no such checkpoint/.test((error as Error).message)) return null;
    throw error;
  }
  try {
    const version = versionOf(contents.tensors, target);
    if (contents.metadata.version !== String(version)) throw new Error(`${target}: metadata says version ${contents.metadata.version}, tensors ${version}`);
    return version;
  } finally {
    Object.values(contents.tensors).forEach((t) => t.dispose());
  }
}

async function verifyTrainerFolder(target: string): Promise<number | null> {
  const model = crashModel();
  const optimizer = new AdamW(model);
  try {
    const checkpoint = await readTrainingCheckpoint(target, { model, optimizer }).catch((error: Error) => {
      if (/not found/.test(error.message)) return null;
      throw error;
    });
    if (checkpoint === null) return null;
    checkpoint.apply();
    const weights = versionOf(model.stateDict(), `${target} model`);
    const moments = versionOf(optimizer.getState().tensors, `${target} optimizer`);
    if (weights !== moments || weights !== checkpoint.state.step) {
      throw new Error(`${target} mixes versions: weights ${weights}, moments ${moments}, trainer.json step ${checkpoint.state.step}`);
    }
    return weights;
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

/** fit's root: the newest checkpoint's three files must agree on the step. */
async function verifyFitRoot(root: string): Promise<number | null> {
  const dir = await latestCheckpoint(root);
  if (dir === null) return null;
  const state = await readTrainerState(dir);
  const steps = [];
  for (const file of ['model.safetensors', 'optimizer.safetensors']) {
    const { tensors, metadata } = await loadSafetensors(join(dir, file));
    Object.values(tensors).forEach((t) => t.dispose());
    steps.push(Number(metadata.step));
  }
  if (steps[0] !== state.step || steps[1] !== state.step) throw new Error(`${dir} mixes steps: trainer.json ${state.step}, model ${steps[0]}, optimizer ${steps[1]}`);
  return state.step;
}

function expectCrashSafe(report: CrashReport, label: string): void {
  console.log(crashSummary(report, label));
  expect(report.failures).toEqual([]);
  expect(report.kills).toBeGreaterThanOrEqual(budget.randomKills);
  // Both outcomes must occur, or the kills never hit a save in progress.
  expect(report.landedNew).toBeGreaterThan(0);
  expect(report.keptOld).toBeGreaterThan(0);
}

describe('kill -9 during saves', () => {
  it('a single safetensors file', { timeout: TIMEOUT }, async () => {
    const root = scratch();
    const target = join(root, 'model.safetensors');
    const report = await runCrashHarness({
      script: CHILD, target, verify: verifyWeights, leftovers: () => saveLeftovers(root), env: { CHIMERA_CRASH_MODE: 'file' }, ...budget,
    });
    expectCrashSafe(report, 'single file');
  });

  it('a sharded checkpoint saved again into the same folder (2 and 3 shards in turn)', { timeout: TIMEOUT }, async () => {
    const target = join(scratch(), 'ckpt');
    const report = await runCrashHarness({
      script: CHILD, target, verify: verifyWeights, leftovers: saveLeftovers, env: { CHIMERA_CRASH_MODE: 'sharded' }, ...budget,
    });
    expectCrashSafe(report, 'sharded');
  });

  it('a training checkpoint folder saved again in place', { timeout: TIMEOUT }, async () => {
    const target = join(scratch(), 'step-00000001');
    const report = await runCrashHarness({
      script: CHILD, target, verify: verifyTrainerFolder, leftovers: saveLeftovers, env: { CHIMERA_CRASH_MODE: 'trainer-folder' }, ...budget,
    });
    expectCrashSafe(report, 'trainer folder');
  });

  it('Trainer.fit checkpointing every step with keepLast 2, resumed after each kill', { timeout: TIMEOUT }, async () => {
    const root = join(scratch(), 'run');
    const report = await runCrashHarness({
      script: CHILD, target: root, verify: verifyFitRoot, leftovers: saveLeftovers, env: { CHIMERA_CRASH_MODE: 'fit' }, ...budget,
      maxDelayMs: 3000,
    });
    expectCrashSafe(report, 'fit with pruning');
  });

  it('catches a save path that is not crash-safe (per-file atomic shards, index last)', { timeout: TIMEOUT }, async () => {
    const target = join(scratch(), 'naive');
    const report = await runCrashHarness({
      script: CHILD, target, verify: verifyWeights, env: { CHIMERA_CRASH_MODE: 'naive-sharded' }, sweepStride: budget.full ? 1 : 3, randomKills: 0,
    });
    console.log(`[crash] naive sharded save: ${report.failures.length} of ${report.kills} kills left a mixed or broken checkpoint`);
    expect(report.failures.some((f) => /mixes versions/.test(f))).toBe(true);
  });
});
