// Parity with an independent PyTorch implementation of HF's Llama-family models (test/reference/llama_reference.py):
// the script writes random-init HF checkpoints and the logits of a left-padded prompt batch; loadPretrained must
// reproduce them. Then the other way: what savePretrained writes, the script reads and reproduces.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_BACKENDS, runTorchScript, setupTestBackend, torchAvailable } from '@chimera/core/testing';
import { loadPretrained } from '../src/checkpoint/load-pretrained';
import { savePretrained } from '../src/checkpoint/save-pretrained';
import type { CausalLM } from '../src/model/causal-lm';

interface ManifestCase {
  name: string;
  dir: string;
  reference: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shards: number;
}

interface Reference {
  input_ids: number[][];
  attention_mask: number[][];
  logits: number[][][];
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/llama_reference.py', import.meta.url));
const TOLERANCE = 1e-4;
const CASES = ['llama_gqa_llama3', 'qwen2_bias_tied', 'smollm_bf16_tied', 'qwen3_qknorm_f16'];

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function runLogits(model: CausalLM, reference: Reference): number[][][] {
  return tf.tidy(() => {
    const inputIds = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const paddingMask = tf.tensor2d(reference.attention_mask, undefined, 'int32');
    return model.forward({ inputIds, paddingMask }).logits.arraySync() as number[][][];
  });
}

/** Largest |a - b| over the real (unpadded) positions; padded rows are garbage in HF too. */
function maxDiffAtRealPositions(got: number[][][], expected: number[][][], mask: number[][]): number {
  expect([got.length, got[0]!.length, got[0]![0]!.length]).toEqual([expected.length, expected[0]!.length, expected[0]![0]!.length]);
  let worst = 0;
  mask.forEach((row, b) =>
    row.forEach((real, t) => {
      if (!real) return;
      got[b]![t]!.forEach((value, v) => (worst = Math.max(worst, Math.abs(value - expected[b]![t]![v]!))));
    }),
  );
  return worst;
}

/** Moves every weight by seeded noise, so a round trip carries weights the reference never wrote. */
function perturb(model: CausalLM, seed: number): void {
  model.namedParameters().forEach(([, variable], i) => {
    tf.tidy(() => variable.assign(tf.add(variable, tf.randomNormal(variable.shape, 0, 0.05, 'float32', seed + i))));
  });
}

describe.skipIf(!hasTorch)('HF checkpoint parity with a PyTorch Llama reference', () => {
  let workDir: string;
  let cases: Map<string, ManifestCase>;

  beforeAll(() => {
    workDir = mkdtempSync(join(tmpdir(), 'chimera-llm-parity-'));
    const manifestPath = runTorchScript(script, ['write', join(workDir, 'reference')]).trim();
    const manifest = readJson<{ cases: ManifestCase[] }>(manifestPath);
    cases = new Map(manifest.cases.map((c) => [c.name, c]));
  });

  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('the reference writes every case, in each storage layout', () => {
    expect([...cases.keys()].sort()).toEqual([...CASES].sort());
    expect(cases.get('llama_gqa_llama3')!.shards).toBeGreaterThan(1);
    expect(cases.get('qwen2_bias_tied')!.shards).toBe(1);
    expect(new Set([...cases.values()].map((c) => c.dtype))).toEqual(new Set(['F32', 'F16', 'BF16']));
    const reference = readJson<Reference>(cases.get('llama_gqa_llama3')!.reference);
    // Left padding is present, and the logits are large enough that 1e-4 is a strict bound.
    expect(reference.attention_mask.some((row) => row[0] === 0)).toBe(true);
    const values = reference.logits.flat(2);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(1);
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    beforeAll(() => setupTestBackend(backend));

    it.each(CASES)('%s: logits match the reference at every real position', async (name) => {
      const entry = cases.get(name)!;
      const reference = readJson<Reference>(entry.reference);
      const before = tf.memory().numTensors;
      const { model, config } = await loadPretrained(entry.dir);
      try {
        expect(config.vocabSize).toBe(reference.logits[0]![0]!.length);
        const diff = maxDiffAtRealPositions(runLogits(model, reference), reference.logits, reference.attention_mask);
        expect(diff).toBeLessThan(TOLERANCE);
      } finally {
        model.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    // RoPE scores depend only on position differences, so shifting a whole row's positions changes nothing; what
    // must matter is which keys are masked and the RoPE frequencies.
    it('the comparison has teeth: attending to the padding, or dropping the llama3 scaling, misses the reference', async () => {
      const entry = cases.get('llama_gqa_llama3')!;
      const reference = readJson<Reference>(entry.reference);
      const unscaled = join(workDir, `${backend}-unscaled`);
      cpSync(entry.dir, unscaled, { recursive: true });
      const configPath = join(unscaled, 'config.json');
      writeFileSync(configPath, JSON.stringify({ ...readJson<object>(configPath), rope_scaling: null }));
      const { model } = await loadPretrained(entry.dir);
      const { model: unscaledModel } = await loadPretrained(unscaled);
      try {
        const unmasked = tf.tidy(
          () => model.forward({ inputIds: tf.tensor2d(reference.input_ids, undefined, 'int32') }).logits.arraySync() as number[][][],
        );
        expect(maxDiffAtRealPositions(unmasked, reference.logits, reference.attention_mask)).toBeGreaterThan(100 * TOLERANCE);
        const diff = maxDiffAtRealPositions(runLogits(unscaledModel, reference), reference.logits, reference.attention_mask);
        expect(diff).toBeGreaterThan(100 * TOLERANCE);
      } finally {
        model.dispose();
        unscaledModel.dispose();
      }
    });

    it('round trip: the reference reproduces the logits of what savePretrained wrote', async () => {
      const jobs: { dir: string; inputs: string; output: string }[] = [];
      const expected = new Map<string, { logits: number[][][]; mask: number[][] }>();
      for (const [i, name] of CASES.entries()) {
        const reference = readJson<Reference>(cases.get(name)!.reference);
        const { model } = await loadPretrained(cases.get(name)!.dir);
        try {
          perturb(model, 100 * i + 1);
          const dir = join(workDir, `${backend}-saved-${name}`);
          // The first case is split into several shards; the others fit one file.
          const { files } = await savePretrained(model, dir, { maxShardBytes: i === 0 ? 60_000 : undefined });
          expect(files.includes('model.safetensors.index.json')).toBe(i === 0);
          expected.set(dir, { logits: runLogits(model, reference), mask: reference.attention_mask });
          const inputs = join(dir, 'inputs.json');
          writeFileSync(inputs, JSON.stringify({ input_ids: reference.input_ids, attention_mask: reference.attention_mask }));
          jobs.push({ dir, inputs, output: join(dir, 'torch-logits.json') });
        } finally {
          model.dispose();
        }
      }
      const jobsPath = join(workDir, `${backend}-jobs.json`);
      writeFileSync(jobsPath, JSON.stringify(jobs));
      runTorchScript(script, ['forward', jobsPath]);
      for (const job of jobs) {
        const { logits, mask } = expected.get(job.dir)!;
        const torchLogits = readJson<{ logits: number[][][] }>(job.output).logits;
        expect(maxDiffAtRealPositions(logits, torchLogits, mask)).toBeLessThan(TOLERANCE);
      }
    });
  });
});
