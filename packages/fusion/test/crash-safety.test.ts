// kill -9 during a composed model's trainable-only checkpoint save (sharded): killed at random times and at
// every write point, the checkpoint must load onto freshly built frozen parts as one whole version, never older
// than acknowledged, with no leftovers once loaded. CI runs reduced counts; `npm run crash` the full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crashBudget, crashSummary, runCrashHarness, saveLeftovers, setupTestBackend } from '@chimera/core/testing';
// @ts-expect-error: a plain .mjs module shared with the child
import { composedModel } from './crash/model.mjs';
import type { ComposedModel } from '../src/index';

const budget = crashBudget({ randomKills: 4, sweepStride: 3 });
const TIMEOUT = 180_000 + (budget.full ? 150 : 40) * 10_000;
let root: string;

beforeAll(async () => {
  await setupTestBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'chimera-fusion-crash-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function verify(dir: string): Promise<number | null> {
  const model = composedModel() as ComposedModel;
  try {
    const frozenBefore = model.namedParameters().filter(([, v]) => !v.trainable).map(([, v]) => Array.from(v.dataSync()));
    try {
      await model.load(dir);
    } catch (error) {
      if (/no such checkpoint/.test((error as Error).message)) return null;
      throw error;
    }
    const values = new Set<number>();
    for (const v of model.trainableVariables()) for (const x of v.dataSync()) values.add(x);
    if (values.size !== 1) throw new Error(`the trainable weights mix versions ${[...values].slice(0, 4).join(', ')}`);
    const frozenAfter = model.namedParameters().filter(([, v]) => !v.trainable).map(([, v]) => Array.from(v.dataSync()));
    if (JSON.stringify(frozenAfter) !== JSON.stringify(frozenBefore)) throw new Error('loading the trainable-only checkpoint changed frozen weights');
    return [...values][0]!;
  } finally {
    model.dispose();
  }
}

describe('kill -9 during a composed trainable-only save', () => {
  it('the checkpoint always loads whole onto fresh frozen parts, never older than acknowledged, no leftovers', { timeout: TIMEOUT }, async () => {
    const target = join(root, 'projector-ckpt');
    const report = await runCrashHarness({ script: join(__dirname, 'crash', 'child.mjs'), target, verify, leftovers: saveLeftovers, ...budget });
    console.log(crashSummary(report, 'composed trainable-only'));
    expect(report.failures).toEqual([]);
    expect(report.landedNew).toBeGreaterThan(0);
    expect(report.keptOld).toBeGreaterThan(0);
  });
});
