// kill -9 during savePretrained (weights in shards, generation config, tokenizer, config.json): killed at random
// times and at every write point, the folder must load with loadPretrained as one whole export, never less than
// the last acknowledged one, and hold no leftovers once loaded. CI runs reduced counts; `npm run crash` the full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crashBudget, crashSummary, runCrashHarness, saveLeftovers, setupTestBackend } from '@chimera/core/testing';
import { loadPretrained } from '../src/checkpoint/load-pretrained';

const budget = crashBudget({ randomKills: 4, sweepStride: 4 });
const TIMEOUT = 180_000 + (budget.full ? 150 : 40) * 10_000;
let root: string;

beforeAll(async () => {
  await setupTestBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'chimera-llm-crash-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function verify(dir: string): Promise<number | null> {
  let loaded;
  try {
    loaded = await loadPretrained(dir);
  } catch (error) {
    if (/is not a directory/.test((error as Error).message)) return null;
    throw error;
  }
  const { model, config, tokenizer } = loaded;
  try {
    const values = new Set<number>();
    for (const [, v] of model.namedParameters()) for (const x of v.dataSync()) values.add(x);
    if (values.size !== 1) throw new Error(`weights mix versions ${[...values].slice(0, 4).join(', ')}`);
    const version = [...values][0]!;
    if (config.numLayers !== (version % 2 ? 2 : 3)) throw new Error(`config.json has ${config.numLayers} layers, the weights are version ${version}`);
    if (!tokenizer) throw new Error('the tokenizer files are missing');
    return version;
  } finally {
    model.dispose();
  }
}

describe('kill -9 during savePretrained', () => {
  it('the export always loads whole, never older than acknowledged, no leftovers', { timeout: TIMEOUT }, async () => {
    const target = join(root, 'export');
    const report = await runCrashHarness({ script: join(__dirname, 'crash', 'child.mjs'), target, verify, leftovers: saveLeftovers, ...budget });
    console.log(crashSummary(report, 'savePretrained'));
    expect(report.failures).toEqual([]);
    expect(report.landedNew).toBeGreaterThan(0);
    expect(report.keptOld).toBeGreaterThan(0);
  });
});
