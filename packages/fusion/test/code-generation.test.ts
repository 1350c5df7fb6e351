// The shared code-generation loop: exactly N codes in range, cached equals uncached step for step, each step's
// codes are what a plain forward over prompt + codes so far predicts (greedy), guidance mixes the interleaved rows
// (w = 1 equals unguided, w = 4 changes samples), seeded sampling repeats, errors for a budget under the grid and
// guidance without an unconditional prompt, and no leaked tensors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import type { CausalLM } from '@chimera/llm';
import { generateCodes, type CodeGenerationHooks } from '../src/index';
import { tinyBackbone, VOCAB } from './helpers/toy';

const K = 8;
const OFFSET = 16; // Chameleon-style hooks: codes are text ids OFFSET .. OFFSET + K - 1

function chameleonHooks(backbone: CausalLM): CodeGenerationHooks {
  return {
    embedCode: (ids) => backbone.model.embed_tokens.forward(tf.add(ids, tf.scalar(OFFSET, 'int32'))),
    codeLogits: ({ logits }) => tf.slice(logits, [0, OFFSET], [logits.shape[0]!, K]) as tf.Tensor2D,
  };
}

function promptOf(backbone: CausalLM, rows: number[][]): tf.Tensor {
  return tf.tidy(() => backbone.model.embed_tokens.forward(tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32')));
}

describe.each(TEST_BACKENDS)('generateCodes (%s)', (backend) => {
  let backbone: CausalLM;
  let prompt: tf.Tensor;
  let uncond: tf.Tensor;
  beforeAll(async () => {
    await setupTestBackend(backend);
    tf.randomUniform([1]).dispose();
    backbone = tinyBackbone();
    prompt = promptOf(backbone, [
      [1, 5, 9, 3],
      [1, 7, 2, 3],
    ]);
    uncond = promptOf(backbone, [
      [1, 3],
      [1, 3],
    ]);
  });
  afterAll(() => {
    tf.dispose([prompt, uncond]);
    backbone.dispose();
  });

  it('greedy codes equal the argmax of plain forwards over prompt + codes so far; cached equals uncached', async () => {
    const hooks = chameleonHooks(backbone);
    const cached = await generateCodes(backbone, { prompt: { inputsEmbeds: prompt }, hooks, numCodes: 6, codebookSize: K });
    const uncached = await generateCodes(backbone, { prompt: { inputsEmbeds: prompt }, hooks, numCodes: 6, codebookSize: K, useCache: false });
    expect(cached.shape).toEqual([2, 6]);
    expect(cached.dtype).toBe('int32');
    const codes = cached.arraySync();
    expect(uncached.arraySync()).toEqual(codes);
    // Reference: text ids through the whole model, step by step.
    const rows = [
      [1, 5, 9, 3],
      [1, 7, 2, 3],
    ];
    for (let step = 0; step < 6; step++) {
      const expected = tf.tidy(() => {
        const ids = rows.map((r, b) => [...r, ...codes[b]!.slice(0, step).map((c) => c + OFFSET)]);
        const logits = backbone.forward({ inputIds: tf.tensor2d(ids, [2, ids[0]!.length], 'int32') }, { lastLogitsOnly: true }).logits;
        return tf.argMax(tf.slice(tf.reshape(logits, [2, VOCAB]), [0, OFFSET], [2, K]), 1).arraySync() as number[];
      });
      expect(codes.map((r) => r[step])).toEqual(expected);
    }
    tf.dispose([cached, uncached]);
  });

  it('samples in range, repeat with a seed, and guided sampling: w = 1 equals unguided, w = 4 differs', async () => {
    const hooks = chameleonHooks(backbone);
    const base = { prompt: { inputsEmbeds: prompt }, hooks, numCodes: 12, codebookSize: K, temperature: 1, seed: 5 };
    const a = await generateCodes(backbone, base);
    const b = await generateCodes(backbone, base);
    const one = await generateCodes(backbone, { ...base, guidance: 1, unconditional: { inputsEmbeds: uncond } });
    const four = await generateCodes(backbone, { ...base, guidance: 4, unconditional: { inputsEmbeds: uncond } });
    const flat = a.arraySync().flat();
    expect(flat.every((c) => c >= 0 && c < K)).toBe(true);
    expect(b.arraySync()).toEqual(a.arraySync());
    expect(one.arraySync()).toEqual(a.arraySync());
    expect(four.arraySync()).not.toEqual(a.arraySync());
    tf.dispose([a, b, one, four]);
  });

  it('guided greedy codes are the argmax of uncond + w (cond - uncond) from separate plain forwards', async () => {
    const hooks = chameleonHooks(backbone);
    const w = 2.5;
    const guided = await generateCodes(backbone, {
      prompt: { inputsEmbeds: prompt },
      unconditional: { inputsEmbeds: uncond },
      hooks,
      numCodes: 5,
      codebookSize: K,
      guidance: w,
    });
    const codes = guided.arraySync();
    guided.dispose();
    const condRows = [
      [1, 5, 9, 3],
      [1, 7, 2, 3],
    ];
    const uncondRows = [
      [1, 3],
      [1, 3],
    ];
    const codeLogits = (rows: number[][], step: number) => {
      const ids = rows.map((r, b) => [...r, ...codes[b]!.slice(0, step).map((c) => c + OFFSET)]);
      const logits = backbone.forward({ inputIds: tf.tensor2d(ids, [2, ids[0]!.length], 'int32') }, { lastLogitsOnly: true }).logits;
      return tf.slice(tf.reshape(logits, [2, VOCAB]), [0, OFFSET], [2, K]);
    };
    for (let step = 0; step < 5; step++) {
      const expected = tf.tidy(() => {
        const c = codeLogits(condRows, step);
        const u = codeLogits(uncondRows, step);
        return tf.argMax(tf.add(u, tf.mul(tf.sub(c, u), w)), 1).arraySync() as number[];
      });
      expect(codes.map((r) => r[step])).toEqual(expected);
    }
  });

  it('guided: cached equals uncached; left-pads the shorter prompt', async () => {
    const hooks = chameleonHooks(backbone);
    const base = { prompt: { inputsEmbeds: prompt }, unconditional: { inputsEmbeds: uncond }, hooks, numCodes: 5, codebookSize: K, guidance: 3 };
    const cached = await generateCodes(backbone, base);
    const uncached = await generateCodes(backbone, { ...base, useCache: false });
    expect(uncached.arraySync()).toEqual(cached.arraySync());
    tf.dispose([cached, uncached]);
  });

  it('frees everything it makes', async () => {
    const hooks = chameleonHooks(backbone);
    await expectNoLeaks(async () => {
      const codes = await generateCodes(backbone, {
        prompt: { inputsEmbeds: prompt },
        unconditional: { inputsEmbeds: uncond },
        hooks,
        numCodes: 4,
        codebookSize: K,
        guidance: 2,
        topK: 3,
        temperature: 0.7,
        seed: 1,
      });
      codes.dispose();
    }, 'generateCodes');
  });

  it('errors: budget under the grid, guidance without an unconditional prompt, wrong hook shapes', async () => {
    const hooks = chameleonHooks(backbone);
    const base = { prompt: { inputsEmbeds: prompt }, hooks, numCodes: 16, codebookSize: K };
    await expect(generateCodes(backbone, { ...base, maxNewTokens: 10 })).rejects.toThrow(/budget maxNewTokens = 10 is smaller than the grid of 16/);
    await expect(generateCodes(backbone, { ...base, guidance: 3 })).rejects.toThrow(/needs an unconditional prompt/);
    await expect(generateCodes(backbone, { ...base, codebookSize: K + 1 })).rejects.toThrow(/must return \[2, 9\]/);
    const before = tf.memory().numTensors;
    await expect(generateCodes(backbone, { ...base, codebookSize: K + 1 })).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });
});
