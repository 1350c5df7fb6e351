import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { ShapesDataset, SPLITS } from '@chimera-examples/shapes-dataset';
import { classificationBatch, trainingIndices } from '../src/batches';
import { evaluateAccuracy } from '../src/evaluate';
import { runExperiment, type ExperimentOptions } from '../src/experiment';
import { buildClassifier, classificationLoss, type ClassifierSize } from '../src/model';
import { unknownFlagProblems } from '@chimera-examples/kit';

// A reduced problem that trains in seconds: three kinds at 16x16 (a 4x4 grid of 4-pixel patches).
const KINDS = ['circle', 'square', 'triangle'] as const;
const SMALL: ClassifierSize = { imageSize: 16, patchSize: 4, hiddenSize: 32, numLayers: 2, numHeads: 2, intermediateSize: 64, positions: 'learned' };
const DATA = { kinds: KINDS, shapeSize: { min: 6, max: 14 } };
const HELD_OUT = 300;

describe('vit-shapes', () => {
  beforeAll(async () => {
    await initBackend(); // the default backend, as the example
  });

  it('computes the softmax cross-entropy of the labels', () => {
    const logits = [[2, -1, 0.5], [0, 0, 3]];
    const labels = [0, 1];
    const expected = logits.reduce((sum, row, i) => {
      const logSumExp = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
      return sum + (logSumExp - row[labels[i]!]!);
    }, 0) / logits.length;
    const loss = tf.tidy(() => classificationLoss(tf.tensor2d(logits), tf.tensor1d(labels, 'int32')).dataSync()[0]!);
    expect(loss).toBeCloseTo(expected, 5);
  });

  it('draws training indices inside the train split, reproducibly, differently per seed', () => {
    const a = trainingIndices(1, 5, 64);
    expect(trainingIndices(1, 5, 64)).toEqual(a);
    expect(trainingIndices(2, 5, 64)).not.toEqual(a);
    expect(new Set([...a, ...trainingIndices(1, 6, 64)]).size).toBe(128);
    for (const i of a) expect(i >= 0 && i < SPLITS.train.size).toBe(true);
  });

  it('control: an untrained model scores near chance', () => {
    const dataset = new ShapesDataset({ ...DATA, imageSize: SMALL.imageSize });
    const accuracies = [11, 12, 13].map((seed) => {
      const model = buildClassifier(SMALL, KINDS.length, seed);
      try {
        return evaluateAccuracy(model, dataset, 'test', HELD_OUT).accuracy;
      } finally {
        model.dispose();
      }
    });
    for (const accuracy of accuracies) expect(accuracy).toBeLessThan(0.6);
    const mean = accuracies.reduce((s, a) => s + a, 0) / accuracies.length;
    expect(Math.abs(mean - 1 / KINDS.length)).toBeLessThan(0.15);
  });

  it('learns to classify held-out shapes (>= 90%, chance 33%) without leaking tensors', async () => {
    const startTensors = tf.memory().numTensors;
    const options: ExperimentOptions = {
      data: DATA,
      model: SMALL,
      steps: 400,
      batchSize: 32,
      learningRate: 6e-3,
      seed: 3,
      testExamples: HELD_OUT,
    };
    const cpuStart = process.cpuUsage();
    const result = await runExperiment(options);
    const cpu = process.cpuUsage(cpuStart);
    console.log(
      `reduced run: held-out accuracy ${result.before.accuracy.toFixed(3)} -> ${result.after.accuracy.toFixed(3)}, ` +
        `${result.totalSeconds.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`,
    );
    try {
      expect(result.after.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(result.after.total).toBe(HELD_OUT);
      // The test split is what was scored: recompute one batch by hand.
      const direct = tf.tidy(() => {
        const batch = classificationBatch(result.dataset, 'test', [0, 1, 2, 3]);
        return Array.from(tf.argMax(result.model.forward(batch.pixels), 1).dataSync());
      });
      expect(direct).toEqual(result.after.predictions.slice(0, 4));
    } finally {
      result.model.dispose();
    }
    expect(tf.memory().numTensors).toBe(startTensors);
  });
});

describe('the training script', () => {
  it('prints the problem and the usage on stderr and exits 2 for an unknown flag, before any training', async () => {
    expect(await unknownFlagProblems(new URL('../dist/train.js', import.meta.url))).toEqual([]);
  });
});
