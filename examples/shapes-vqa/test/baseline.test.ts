import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, manualSeed } from '@chimera/core';
import { compose, earlyFusion, type ComposedModel } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality } from '@chimera/vision-encoder';
import { SHAPE_KINDS, ShapesDataset, fineDetailOptions } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, IMAGE, PAD, VOCAB_SIZE, heldOutExamples, scoreTextOnly, trainTextBaseline } from '../src';

function tinyModel(): ComposedModel {
  manualSeed(1);
  const image = visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT({ imageSize: 16, patchSize: 8, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 })) });
  const backbone = new CausalLM(
    tinyLlama({ vocabSize: VOCAB_SIZE, hiddenSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 1, intermediateSize: 64, bosTokenId: BOS, eosTokenId: EOS, padTokenId: PAD }),
  );
  return compose({ backbone, modalities: { image }, fusion: { image: earlyFusion({ projector: 'linear' }) }, placeholders: { image: IMAGE } });
}

describe('text-only baseline', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it('learns the answer format and prior from the question alone, training only the LLM', async () => {
    const dataset = new ShapesDataset(fineDetailOptions({ seed: 0 }));
    const heldOut = heldOutExamples(dataset, ['shape'], 40);
    const tensorsBefore = tf.memory().numTensors;
    const model = tinyModel();
    try {
      const untrained = await scoreTextOnly(model, heldOut);
      // An untrained LLM writes no kind word followed by <eos>.
      expect(untrained.overall.accuracy).toBeLessThan(0.1);
      const towerBefore = model.namedParameters().filter(([name]) => name.startsWith('image.')).map(([name, v]) => [name, Array.from(v.dataSync())] as const);
      const { history, score } = await trainTextBaseline(model, { dataset, types: ['shape'], heldOut, steps: 60, learningRate: 1e-2, batchSize: 16, seed: 3 });
      expect(history).toHaveLength(60);
      expect(history.at(-1)!.loss!).toBeLessThan(history[0]!.loss! / 2);
      // It answers every question with a kind and <eos>: the prior (about 1 in 5 right), never the image.
      expect(score.answers.every((a) => (SHAPE_KINDS as readonly string[]).includes(a))).toBe(true);
      expect(score.overall.accuracy).toBeGreaterThan(0.1);
      expect(score.overall.accuracy).toBeLessThan(0.5);
      // Only the LLM trained.
      const towerAfter = new Map(model.namedParameters().map(([name, v]) => [name, Array.from(v.dataSync())]));
      for (const [name, values] of towerBefore) expect(towerAfter.get(name)).toEqual(values);
    } finally {
      model.dispose();
    }
    // Training, generation and scoring leave nothing behind once the model is gone.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
