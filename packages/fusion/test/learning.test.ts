// A tiny learning check per family. A small LLM is first pre-trained on text only: a cue token (20 + c) after
// the prompt is answered with token 10 + c. The composed models then see a toy item whose features encode class c
// in place of the cue, and must answer 10 + c. Held-out accuracy must pass 90%; a model whose media path is
// broken (or not trained yet: checked before training) can only guess among four answers (25%).
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Trainer, manualSeed } from '@chimera/core';
import { expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { causalLMLoss, type CausalLM } from '@chimera/llm';
import { compose, earlyFusion, gatedCrossAttention, type ComposedModel, type ComposedSample, type FusionStrategy, type TrainablePreset } from '../src/index';
import { BOS, TOY_ID, tinyBackbone, toyModality, type ToyModality } from './helpers/toy';

const CLASSES = 4;
const ANSWER = 10; // class c is answered with token 10 + c
const CUE = 20; // in the text-only pre-training, token 20 + c stands where the item will be

function sample(toy: ToyModality, cls: number, seed: number, answer: boolean): ComposedSample {
  return [
    { text: [BOS, 4], trained: false },
    { modality: 'toy', item: toy.prepare({ cls, seed, noise: 0.3 }) },
    { text: [5], trained: false },
    ...(answer ? [{ text: [ANSWER + cls] }] : []),
  ];
}

/** Text-only pre-training of the backbone: [BOS, 4, cue, 5, answer]. Returns its weights. */
function pretrainText(steps: number): Record<string, tf.Tensor> {
  manualSeed(21);
  const llm = tinyBackbone();
  const optimizer = new AdamW(llm, { learningRate: 0.02, weightDecay: 0 });
  for (let step = 0; step < steps; step++) {
    const rows = Array.from({ length: 16 }, (_, i) => (i + step) % CLASSES).map((c) => [BOS, 4, CUE + c, 5, ANSWER + c]);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const logits = llm.forward({ inputIds: tf.tensor2d(rows, undefined, 'int32') }).logits;
          const targets = tf.tensor2d(rows.map((r) => [...r.slice(1), 0]), undefined, 'int32');
          return causalLMLoss(logits, targets, tf.tensor2d(rows.map(() => [1, 1, 1, 1, 0])));
        }),
      llm.trainableVariables(),
    );
    optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
  }
  optimizer.dispose();
  const weights = Object.fromEntries(Object.entries(llm.stateDict()).map(([k, v]) => [k, tf.clone(v)]));
  llm.dispose();
  return weights;
}

function composeOn(weights: Record<string, tf.Tensor>, fusion: FusionStrategy): { model: ComposedModel; toy: ToyModality; backbone: CausalLM } {
  const backbone = tinyBackbone();
  backbone.loadStateDict(weights);
  const toy = toyModality();
  const model = compose({ backbone, modalities: { toy }, fusion: { toy: fusion }, placeholders: { toy: TOY_ID } });
  return { model, toy, backbone };
}

/** Trains with core's Trainer (batches a pure function of the step); returns the first and last losses. */
async function train(model: ComposedModel, toy: ToyModality, preset: TrainablePreset, steps: number, offset: number, learningRate = 0.02) {
  model.trainOnly(preset);
  const trainer = new Trainer<ComposedModel, ComposedSample[]>({
    model,
    loss: (m, batch) => m.loss(batch),
    batchAt: (step) => Array.from({ length: 12 }, (_, i) => sample(toy, i % CLASSES, 1000 * (step + offset) + i, true)),
    steps,
    optimizer: { learningRate, weightDecay: 0 },
    progress: false,
  });
  const { history } = await trainer.fit();
  trainer.dispose();
  return { first: history[0]!.loss!, last: history.at(-1)!.loss! };
}

async function heldOutAccuracy(model: ComposedModel, toy: ToyModality): Promise<number> {
  const prompts = Array.from({ length: 40 }, (_, i) => sample(toy, i % CLASSES, 500_000 + i, false));
  const { tokens } = await expectNoLeaks(() => model.generate(prompts, { maxNewTokens: 1, eosTokenId: null }), 'generation');
  return tokens.filter((row, i) => row[0] === ANSWER + (i % CLASSES)).length / prompts.length;
}

describe('learning checks (cpu)', () => {
  let pretrained: Record<string, tf.Tensor>;
  beforeAll(async () => {
    await setupTestBackend('cpu'); // with core's fast paths, incl. the one-pass UnsortedSegmentSum
    pretrained = pretrainText(30);
  });

  it('LLaVA-style early fusion: projector-only stage, then projector + LLM, answers held-out items', async () => {
    manualSeed(11);
    const { model, toy } = composeOn(pretrained, earlyFusion());
    expect(await heldOutAccuracy(model, toy)).toBeLessThan(0.5);
    const stage1 = await train(model, toy, 'projector', 15, 0);
    expect(stage1.last).toBeLessThan(0.5 * stage1.first);
    const stage2 = await train(model, toy, 'projector+llm', 15, 100, 0.005);
    expect(stage2.last).toBeLessThan(stage1.last);
    expect(await heldOutAccuracy(model, toy)).toBeGreaterThanOrEqual(0.9);
    model.dispose();
  });

  it('Flamingo-style gated cross-attention into the frozen LLM answers held-out items', async () => {
    manualSeed(12);
    const perceiver = { type: 'perceiver', numLatents: 2, depth: 1, heads: 2, headDim: 8 } as const;
    const { model, toy, backbone } = composeOn(pretrained, gatedCrossAttention({ layers: 'all', resampler: perceiver }));
    expect(await heldOutAccuracy(model, toy)).toBeLessThan(0.5); // zero gates: the frozen LLM can only guess
    const { first, last } = await train(model, toy, 'fusion', 30, 0);
    expect(last).toBeLessThan(0.2 * first);
    expect(await heldOutAccuracy(model, toy)).toBeGreaterThanOrEqual(0.9);
    const unchanged = Object.entries(pretrained).every(([name, t]) => {
      const now = backbone.stateDict()[name]!.dataSync();
      return t.dataSync().every((v, i) => v === now[i]);
    });
    expect(unchanged).toBe(true); // the LLM stayed frozen
    model.dispose();
  });
});
