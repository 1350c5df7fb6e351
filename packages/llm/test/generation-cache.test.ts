import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaks } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { generate } from '../src/generation/generate';
import { promptsOfLengths, referenceGreedy, sharpModel, sharpen } from './generation-helpers';

const NEW_TOKENS = 10;

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('greedy with the cache equals greedy by full recomputation, token for token, on prompts of different lengths', async () => {
    const model = sharpModel(tinyLlama());
    const prompts = promptsOfLengths([7, 2, 5, 1], 64, 3);
    const cached = await expectNoLeaks(() => generate(model, prompts, { maxNewTokens: NEW_TOKENS }), 'cached generate');
    const recomputed = await expectNoLeaks(() => generate(model, prompts, { maxNewTokens: NEW_TOKENS, useCache: false }), 'recomputed');
    expect(cached.tokens).toEqual(recomputed.tokens);
    expect(cached.tokens.every((row) => row.length === NEW_TOKENS)).toBe(true);
    // The rows are not degenerate (a model stuck on one token would hide position and mask bugs).
    expect(new Set(cached.tokens.flat()).size).toBeGreaterThan(8);
    model.dispose();
  });

  it('each row of a left-padded batch gets the tokens it gets alone, and both match a float64 reference decode', async () => {
    const model = sharpModel(tinyLlama({ numKvHeads: 1 }), 5);
    const prompts = promptsOfLengths([3, 8, 1], 64, 9);
    const batched = await generate(model, prompts, { maxNewTokens: 8 });
    for (const [b, prompt] of prompts.entries()) {
      const alone = await generate(model, [prompt], { maxNewTokens: 8 });
      expect(batched.tokens[b], `row ${b}`).toEqual(alone.tokens[0]);
      expect(alone.tokens[0], `row ${b} vs reference`).toEqual(referenceGreedy(model, prompt, 8));
      expect(batched.sequences[b]).toEqual([...prompt, ...batched.tokens[b]!]);
    }
    model.dispose();
  });

  it('an already padded id tensor with its mask, and prompt embeddings with a mask, give the same tokens as id rows', async () => {
    const model = sharpModel(tinyLlama(), 21);
    const prompts = promptsOfLengths([6, 3], 64, 4);
    const expected = (await generate(model, prompts, { maxNewTokens: 6 })).tokens;
    const padded = tf.tensor2d([prompts[0]!, [0, 0, 0, ...prompts[1]!]], undefined, 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]], undefined, 'int32');
    const embeds = tf.tidy(() => model.model.embed_tokens.forward(padded));
    for (const useCache of [true, false]) {
      const fromTensor = await expectNoLeaks(() => generate(model, padded, { maxNewTokens: 6, paddingMask: mask, useCache }));
      expect(fromTensor.tokens).toEqual(expected);
      expect(fromTensor.sequences[1]).toEqual([...prompts[1]!, ...expected[1]!]);
      const fromEmbeds = await expectNoLeaks(() => generate(model, { inputsEmbeds: embeds, paddingMask: mask }, { maxNewTokens: 6, useCache }));
      expect(fromEmbeds.tokens).toEqual(expected);
      expect(fromEmbeds.sequences).toEqual(expected); // no prompt ids to report
    }
    tf.dispose([padded, mask, embeds]);
    model.dispose();
  });

  it('explicit positions: generated tokens continue from each row\'s last prompt position (1-D and M-RoPE)', async () => {
    const model = sharpModel(tinyLlama(), 2);
    const prompts = promptsOfLengths([4, 2], 64, 8);
    // Row 0 starts at position 5, row 1 at 0. RoPE attention depends only on position differences, so both rows
    // must decode like the reference at 0..n-1; a generated token placed at the wrong position would not.
    const positions = tf.tensor2d([[5, 6, 7, 8], [0, 0, 0, 1]], undefined, 'int32');
    const cached = await generate(model, prompts, { maxNewTokens: 6, positions });
    const recomputed = await generate(model, prompts, { maxNewTokens: 6, positions, useCache: false });
    expect(cached.tokens).toEqual(recomputed.tokens);
    expect(cached.tokens[0]).toEqual(referenceGreedy(model, prompts[0]!, 6));
    expect(cached.tokens[1]).toEqual(referenceGreedy(model, prompts[1]!, 6));
    positions.dispose();
    model.dispose();

    // M-RoPE with text-like positions (every axis equal) decodes like the 1-D default positions.
    const mrope = sharpModel(tinyLlama({ mropeSections: [1, 1, 2] }), 3);
    const plain = await generate(mrope, prompts, { maxNewTokens: 6 });
    const positions3 = tf.tensor3d([0, 1, 2].map(() => [[3, 4, 5, 6], [0, 0, 9, 10]]), undefined, 'int32');
    for (const useCache of [true, false]) {
      const withAxes = await expectNoLeaks(() => generate(mrope, prompts, { maxNewTokens: 6, positions: positions3, useCache }));
      expect(withAxes.tokens).toEqual(plain.tokens);
    }
    positions3.dispose();
    mrope.dispose();
  });

  it('tokenModality routes the prompt; generated tokens are text: cache, recomputation and reference agree', async () => {
    const model = sharpModel(tinyLlama(), 13);
    model.routeByModality({ numModalities: 2, mode: 'shared-attention' });
    sharpen(model, 14); // experts get their own weights
    const prompts = promptsOfLengths([5, 3], 64, 6);
    const modality = [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0]];
    const tokenModality = tf.tensor2d(modality, undefined, 'int32');
    const cached = await generate(model, prompts, { maxNewTokens: 6, tokenModality });
    const recomputed = await generate(model, prompts, { maxNewTokens: 6, tokenModality, useCache: false });
    expect(cached.tokens).toEqual(recomputed.tokens);
    expect(cached.tokens[0]).toEqual(referenceGreedy(model, prompts[0]!, 6, { promptModality: modality[0]!, mode: 'shared-attention' }));
    const withoutRouting = await generate(model, prompts, { maxNewTokens: 6 });
    expect(withoutRouting.tokens[0]).not.toEqual(cached.tokens[0]); // the modalities did change something
    tokenModality.dispose();
    model.dispose();
  });

  it('a prefix-LM attention bias for the prompt: cache and full recomputation agree', async () => {
    const model = sharpModel(tinyLlama(), 17);
    const prompts = promptsOfLengths([4, 2], 64, 12);
    // Row 0 sees its whole prompt bidirectionally; row 1 (left-padded by 2) is causal over its 2 real tokens.
    const T = 4;
    const rows = [
      Array.from({ length: T }, () => new Array<number>(T).fill(0)),
      Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (j < 2 || j > i ? MASK_VALUE : 0))),
    ];
    const attentionBias = tf.tensor4d(rows.map((r) => [r]));
    const cached = await generate(model, prompts, { maxNewTokens: 6, attentionBias });
    const recomputed = await generate(model, prompts, { maxNewTokens: 6, attentionBias, useCache: false });
    expect(cached.tokens).toEqual(recomputed.tokens);
    // The bias takes effect: row 0's first logits change, row 1's (plain causal) do not.
    const firstLogits = async (bias?: tf.Tensor) => {
      let seen: number[][] = [];
      const capture = { process: (logits: tf.Tensor2D) => ((seen = seen.length ? seen : (logits.arraySync() as number[][])), tf.clone(logits)) };
      await generate(model, prompts, { maxNewTokens: 1, attentionBias: bias, logitsProcessors: [capture] });
      return seen;
    };
    const [withBias, causal] = [await firstLogits(attentionBias), await firstLogits()];
    const diff = (b: number) => Math.max(...withBias[b]!.map((v, i) => Math.abs(v - causal[b]![i]!)));
    expect(diff(0)).toBeGreaterThan(1e-2);
    expect(diff(1)).toBeLessThan(1e-4);
    attentionBias.dispose();
    model.dispose();
  });
});
