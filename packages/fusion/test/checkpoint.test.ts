// Trainable-only checkpoints (the OpenFlamingo pattern): train a few steps, save only the trainable parameters,
// build a fresh model, load its frozen parts from the pretrained weights and then the checkpoint: identical logits
// and answers, and the same trainable set. For both families.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, manualSeed, readSafetensorsHeader } from '@chimera/core';
import { expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { compose, earlyFusion, gatedCrossAttention, type ComposedModel, type ComposedSample, type TrainablePreset } from '../src/index';
import { BOS, TOY_ID, exactlyEqual, tinyBackbone, toyModality, type ToyModality } from './helpers/toy';

type Family = 'early' | 'cross';

function build(family: Family, seed: number): { model: ComposedModel; toy: ToyModality } {
  manualSeed(seed);
  const toy = toyModality();
  const fusion =
    family === 'early'
      ? earlyFusion({ projector: 'mlp2x_gelu' })
      : gatedCrossAttention({ layers: [1], resampler: { type: 'perceiver', numLatents: 2, depth: 1, heads: 2, headDim: 4 } });
  const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: fusion }, placeholders: { toy: TOY_ID } });
  return { model, toy };
}

function samples(toy: ToyModality, answers: boolean): ComposedSample[] {
  return [0, 1, 2, 3].map((cls) => [
    { text: [BOS, 4], trained: false },
    { modality: 'toy', item: toy.prepare({ cls, seed: cls }) },
    { text: [5], trained: false },
    ...(answers ? [{ text: [10 + cls] }] : []),
  ]);
}

const PRESET: Record<Family, TrainablePreset> = { early: 'projector', cross: 'fusion' };

describe('trainable-only checkpoints (cpu)', () => {
  let dir: string;
  beforeAll(async () => {
    await setupTestBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'chimera-fusion-ckpt-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['early', 'cross'] as const)('%s fusion: save trainable-only, load onto fresh frozen parts, same logits and answers', async (family) => {
    const { model, toy } = build(family, 1);
    const pretrained = join(dir, `${family}-pretrained.safetensors`);
    await model.save(pretrained); // stands for the pretrained LLM and encoder the run starts from
    model.trainOnly(PRESET[family]);
    const optimizer = new AdamW(model, { learningRate: 0.05 });
    const batch = samples(toy, true);
    for (let step = 0; step < 4; step++) {
      await expectNoLeaks(() => {
        const { value, grads } = tf.variableGrads(() => model.loss(batch), model.trainableVariables());
        optimizer.applyGradients(grads);
        tf.dispose([value, ...Object.values(grads)]);
      }, `training step ${step}`);
    }
    optimizer.dispose();
    const stage = join(dir, `${family}-stage`); // a directory: the HF sharded layout
    const saved = await model.save(stage, { trainableOnly: true });
    const trainable = model.namedParameters().filter(([, v]) => v.trainable).map(([n]) => n);
    expect(saved.sort()).toEqual([...trainable].sort());
    expect(saved.every((n) => (family === 'early' ? n.startsWith('toy.projector.') : /^toy\.resampler\.|^llm\.model\.inserted\./.test(n)))).toBe(true);
    const header = await readSafetensorsHeader(join(stage, 'model.safetensors'));
    expect(header.metadata['chimera.checkpoint']).toBe('trainable');

    const prompts = samples(toy, false);
    const reference = model.forward(prompts);
    const answers = await model.generate(prompts, { maxNewTokens: 2, eosTokenId: null });

    // A fresh model (different random init everywhere): frozen parts from the pretrained weights, then the stage.
    const fresh = build(family, 99);
    const untrained = fresh.model.forward(prompts);
    expect(exactlyEqual(untrained.logits, reference.logits)).toBe(false);
    await fresh.model.load(pretrained);
    await fresh.model.load(stage);
    const restored = fresh.model.forward(prompts);
    expect(exactlyEqual(restored.logits, reference.logits)).toBe(true);
    const again = await fresh.model.generate(prompts, { maxNewTokens: 2, eosTokenId: null });
    expect(again.tokens).toEqual(answers.tokens);
    // The trainable set came back with the checkpoint.
    expect(fresh.model.namedParameters().filter(([, v]) => v.trainable).map(([n]) => n)).toEqual(trainable);
    tf.dispose([reference, untrained, restored]);
    model.dispose();
    fresh.model.dispose();
  });

  it('a trainable checkpoint from a differently composed model is refused', async () => {
    const { model } = build('early', 3);
    model.trainOnly('projector');
    const path = join(dir, 'mlp.safetensors');
    await model.save(path, { trainableOnly: true });
    manualSeed(4);
    const toy = toyModality();
    const linear = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: earlyFusion({ projector: 'linear' }) } });
    await expect(linear.load(path)).rejects.toThrow(/the checkpoint trained 2 parameter\(s\) this model lacks \(toy\.projector\.linear_2\.weight/);
    await expect(model.save(join(dir, 'none.safetensors'), { trainableOnly: true }).then(() => 0)).resolves.toBe(0);
    model.trainOnly('none');
    await expect(model.save(join(dir, 'empty.safetensors'), { trainableOnly: true })).rejects.toThrow(/no parameter is trainable/);
    model.dispose();
    linear.dispose();
  });
});
