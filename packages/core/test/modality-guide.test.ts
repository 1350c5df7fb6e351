// The minimal example of docs/modality-contract.md, kept runnable: keep the two in step.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';
import { Linear } from '../src/nn/linear';
import { ModalityModule, ModalityRegistry, mediaSegment, packSequences, type Modality, type Sample } from '../src/modality/index';

interface Signal {
  chunks: Float32Array;
  count: number;
}

function signalModality(width: number): Modality<number[], Signal> & { encoder: Linear } {
  const encoder = new Linear(4, width);
  return {
    name: 'signal',
    encoder,
    module: new ModalityModule({ encoder }),
    prepare(raw) {
      if (raw.length === 0 || raw.length % 4 !== 0) {
        throw new Error(`signal: expected a positive multiple of 4 samples, got ${raw.length}`);
      }
      return { chunks: Float32Array.from(raw), count: raw.length / 4 };
    },
    tokensFor: (item) => item.count,
    continuousIn: {
      featureDim: width,
      encode(items) {
        const features = items.map((item) => tf.tidy(() => encoder.forward(tf.tensor2d(item.chunks, [item.count, 4]))));
        return { features, tokensPerItem: items.map((item) => item.count) };
      },
    },
  };
}

describe('the guide example', () => {
  beforeAll(() => setupTestBackend('wasm'));

  it('trains through the splice: gradients reach the encoder and the embedding table, nothing leaks', () => {
    const signal = signalModality(8);
    const registry = new ModalityRegistry([signal]);
    const table = tf.variable(tf.randomNormal([100, 8], 0, 1, 'float32', 3));
    const items = [signal.prepare([1, 2, 3, 4, 5, 6, 7, 8]), signal.prepare([0, 1, 0, 1])];
    const samples: Sample[] = [
      [{ text: [1, 2], trained: false }, mediaSegment(signal, items[0]!), { text: [3, 4] }],
      [mediaSegment(signal, items[1]!), { text: [5] }],
    ];
    expectNoLeaksSync(() => {
      const { value, grads } = tf.variableGrads(() => {
        const { features } = signal.continuousIn!.encode(items);
        const batch = packSequences(samples, { modalities: registry, placeholderIds: { signal: 99 } }, {
          embedText: (ids) => tf.gather(table, ids),
          features: { signal: features },
        });
        const logits = tf.matMul(tf.reshape(batch.inputsEmbeds!, [-1, 8]), tf.transpose(table));
        return tf.losses.softmaxCrossEntropy(
          tf.oneHot(tf.reshape(batch.targets.text.ids, [-1]), 100),
          logits,
          tf.reshape(batch.targets.text.mask, [-1]),
        ) as tf.Scalar;
      }, [signal.encoder.weight, table]);
      expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
      const maxAbs = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
      expect(maxAbs(grads[signal.encoder.weight.name]!)).toBeGreaterThan(0);
      expect(maxAbs(grads[table.name]!)).toBeGreaterThan(0);
      tf.dispose([value, ...Object.values(grads)]);
    });
    signal.module!.dispose();
    table.dispose();
  });
});
