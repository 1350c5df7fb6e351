// Generation with a tied LM head after every way its weights change. The head (core's Embedding.attend) keeps a
// transposed copy of the table for calls without a gradient tape; here greedy tokens and logits are compared with
// the float64 reference of generation-helpers (no tfjs, no cache, weights read from the state dict at that moment)
// after an optimizer step, a checkpoint load and a vocabulary resize. (A tied model with random weights mostly
// repeats its last token, so the logits comparison is what sees a stale head: it would be off by the update.) Also: the padding mask that decoding leaves
// out when nothing is padded still reaches inserted blocks.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Module } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaks } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { generate } from '../src/generation/generate';
import { causalLMLoss, shiftedTargets } from '../src/loss';
import type { CausalLM } from '../src/model/causal-lm';
import type { BlockContext } from '../src/model/extension-points';
import { referenceGreedy, sharpModel } from './generation-helpers';
import { referenceLogits } from './model-helpers';

const PROMPT = [5, 17, 3, 42, 8];
const STEPS = 6;

/** Greedy tokens from generate (KV cache) and the last position's logits against the float64 reference. */
async function expectMatchesReference(model: CausalLM, label: string): Promise<number[]> {
  const result = await generate(model, [PROMPT], { maxNewTokens: STEPS, eosTokenId: null });
  expect(result.tokens[0], label).toEqual(referenceGreedy(model, PROMPT, STEPS));
  const ids = tf.tensor2d([PROMPT], [1, PROMPT.length], 'int32');
  const out = model.forward({ inputIds: ids });
  const got = out.logits.arraySync() as number[][][];
  const expected = referenceLogits(model, [PROMPT]);
  let worst = 0;
  got[0]!.forEach((row, t) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected[0]![t]![i]!)))));
  expect(worst, label).toBeLessThan(1e-4);
  tf.dispose([ids, out.logits, out.hidden]);
  return result.tokens[0]!;
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('tied head: generate equals the reference after a training step, a checkpoint load and a resize', async () => {
    const config = tinyLlama({ tieWordEmbeddings: true });
    const model = sharpModel(config, 21);
    const other = sharpModel(config, 22);
    // sharpModel leaves its source tensors behind; count from here: at the end only the two models' variables go.
    const start = tf.memory().numTensors;
    const variables = model.namedParameters().length + other.namedParameters().length;
    const first = await expectMatchesReference(model, 'fresh model');

    // One AdamW step with a large rate, gradients through the head's differentiable path.
    const optimizer = new AdamW(model, { learningRate: 0.05, weightDecay: 0 });
    const ids = tf.tensor2d([[...PROMPT, ...first]], [1, PROMPT.length + STEPS], 'int32');
    const { targets, mask } = shiftedTargets(ids);
    const table = model.model.embed_tokens.weight;
    const before = tf.clone(table);
    const { value, grads } = tf.variableGrads(() => causalLMLoss(model.forward({ inputIds: ids }).logits, targets, mask), model.trainableVariables());
    expect(grads[table.name], 'the tied table gets a gradient').toBeDefined();
    optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads), ids, targets, mask]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(table, before))).dataSync()[0])).toBeGreaterThan(0.01);
    before.dispose();
    await expectMatchesReference(model, 'after an optimizer step');
    optimizer.dispose();

    // A checkpoint of another model.
    model.loadStateDict(other.stateDict());
    await expectMatchesReference(model, 'after loadStateDict');

    // Added tokens: the table (and so the head) grows.
    model.resizeTokenEmbeddings(config.vocabSize + 6);
    await expectMatchesReference(model, 'after resizeTokenEmbeddings');
    expect(Object.keys(model.stateDict())).not.toContain('lm_head.weight');
    model.dispose();
    other.dispose();
    expect(tf.memory().numTensors).toBe(start - variables);
  });

  it('a generation call on a tied model that already ran leaves nothing behind', async () => {
    const model = sharpModel(tinyLlama({ tieWordEmbeddings: true }), 23);
    await generate(model, [PROMPT], { maxNewTokens: 2, eosTokenId: null }); // makes the head's copy
    await expectNoLeaks(() => generate(model, [PROMPT, [7, 9]], { maxNewTokens: 4, eosTokenId: null }).then(() => undefined), 'generate');
    model.dispose();
  });

  it('without padding the mask is left out of the forward calls, but an inserted block still receives it', async () => {
    class MaskProbe extends Module {
      readonly seen: (number[][] | null)[] = [];
      forward(x: tf.Tensor, ctx: BlockContext): tf.Tensor {
        this.seen.push(ctx.paddingMask ? (ctx.paddingMask.arraySync() as number[][]) : null);
        return x;
      }
    }
    const model = sharpModel(tinyLlama(), 24);
    const plain = await generate(model, [PROMPT], { maxNewTokens: 3, eosTokenId: null });
    const probe = new MaskProbe();
    model.insertBlock(probe, { layer: 0, position: 'before' });
    const probed = await generate(model, [PROMPT], { maxNewTokens: 3, eosTokenId: null });
    expect(probed.tokens).toEqual(plain.tokens);
    expect(probe.seen.map((m) => m && m[0]!.length)).toEqual([5, 6, 7]); // prefill, then two decode steps
    expect(probe.seen.every((m) => m!.every((row) => row.every((v) => v === 1)))).toBe(true);
    model.dispose();
  });
});
