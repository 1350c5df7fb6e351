// The framework checks media items for every fusion strategy (item-features.ts): a raw input passed as `item`, an
// empty item, features wider than the plugin's featureDim, and a feature count other than tokensFor fail with
// one message naming the modality and the item as the caller gave it, in early fusion and cross-attention alike
// (where some of these used to pass silently), and leak nothing. Also: a plugin whose batched encode splits the
// batch back into items with one tf.split trains with a one-item batch; a disposed model says so.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, ModalityModule, type Modality } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { compose, earlyFusion, gatedCrossAttention, type ComposedModel, type ComposedSample, type FusionStrategy } from '../src/index';
import { BOS, RAW, TOY_ID, openGates, tinyBackbone, toyModality, type ToyItem } from './helpers/toy';

const PERCEIVER = { type: 'perceiver', numLatents: 2, depth: 1, heads: 2, headDim: 8, ffMult: 2 } as const;

/** Every strategy family (and its resampler variants): each must apply the same checks. */
const FAMILIES: [string, () => FusionStrategy][] = [
  ['early fusion', () => earlyFusion()],
  ['early fusion + resampler', () => earlyFusion({ resampler: PERCEIVER })],
  ['cross-attention', () => gatedCrossAttention({ layers: [0], resampler: PERCEIVER })],
  ['cross-attention without resampler', () => gatedCrossAttention({ layers: [0], resampler: false })],
];

function build(strategy: () => FusionStrategy, toy = toyModality()): ComposedModel {
  return compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: strategy() }, placeholders: { toy: TOY_ID } });
}

/** The message of what `run` throws (checking that it throws and leaks nothing). */
function failure(run: () => unknown): string {
  const before = tf.memory().numTensors;
  let message = 'no error';
  try {
    tf.tidy(() => {
      run();
    });
  } catch (e) {
    message = (e as Error).message;
  }
  expect(tf.memory().numTensors).toBe(before);
  return message;
}

describe('item checks in every strategy (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  for (const [family, strategy] of FAMILIES) {
    describe(family, () => {
      it('a raw input passed as item is named as such, with what to pass instead', () => {
        const model = build(strategy);
        const raw = { cls: 1 }; // what toy.prepare takes, not what it returns
        const parts: ComposedSample[] = [[{ text: [BOS] }], [{ text: [BOS] }, { modality: 'toy', item: raw }]];
        const message = failure(() => model.loss(parts));
        expect(message).toMatch(
          /^sample 1, part 1: this 'toy' item occupies undefined positions by toy\.tokensFor\(item\), where a whole number >= 1 is expected\. Was a raw input passed as item\? Give raw inputs as \{ modality: 'toy', raw \}/,
        );
        expect(message).not.toMatch(/mediaSegment|placeholder/);
        const tokens: ComposedSample[] = [{ ids: [BOS, TOY_ID], media: [{ modality: 'toy', item: raw }] }];
        expect(failure(() => model.loss(tokens))).toMatch(/^sample 0, media item 0: this 'toy' item occupies undefined positions/);
        // The advice works: the same input as raw is prepared by the model.
        expect(Number.isFinite(tf.tidy(() => model.loss([[{ text: [BOS] }, { modality: 'toy', raw }, { text: [5] }]]).dataSync()[0]!))).toBe(true);
        model.dispose();
      });

      it('an empty item is refused instead of passing through', () => {
        const toy = toyModality();
        const model = build(strategy, toy);
        const empty = toy.prepare({ cls: 1, tokens: 0 });
        const message = failure(() => model.loss([[{ text: [BOS] }, { modality: 'toy', item: empty }, { text: [5] }]]));
        expect(message).toMatch(/^sample 0, part 1: this 'toy' item is empty: toy\.tokensFor\(item\) gives 0 positions, so there is nothing to encode/);
        model.dispose();
      });

      it('features wider than the declared featureDim name the item and both widths, not an anonymous Linear', () => {
        const model = build(strategy, toyModality({ featureDim: 10, declaredFeatureDim: 8 }));
        const item = model.prepare('toy', { cls: 2 });
        const message = failure(() => model.loss([[{ text: [BOS] }], [{ text: [BOS, 5] }, { text: [6] }, { modality: 'toy', item }]]));
        expect(message).toMatch(
          /^sample 1, part 2: the 'toy' encoder gave this item features of width 10, but the plugin declares featureDim 8\. A plugin's featureDim must be the width its encode returns/,
        );
        model.dispose();
      });

      it('a feature count other than tokensFor names the item and both counts', () => {
        const model = build(strategy, toyModality({ extraFeatures: 1 }));
        const item = model.prepare('toy', { cls: 3 });
        const message = failure(() => model.loss([{ ids: [BOS, 5], media: [] }, { ids: [BOS, TOY_ID, 5], media: [{ modality: 'toy', item }] }]));
        expect(message).toMatch(
          /^sample 1, media item 0: the 'toy' encoder gave this item 4 features, but toy\.tokensFor\(item\) says 3\. Either the item was prepared with other settings/,
        );
        model.dispose();
      });
    });
  }

  it('an encode that returns features for the wrong number of items is named', () => {
    const toy = toyModality();
    const broken: Modality<unknown, ToyItem> = { ...toy, continuousIn: { featureDim: 8, encode: (items) => toy.continuousIn!.encode(items.slice(1)) } };
    const model = compose({ backbone: tinyBackbone(), modalities: { toy: broken }, fusion: { toy: earlyFusion() } });
    const item = toy.prepare({ cls: 1 });
    const message = failure(() => model.loss([[{ modality: 'toy', item }, { text: [BOS] }], [{ text: [5] }, { modality: 'toy', item }]]));
    expect(message).toMatch(/^the 'toy' plugin's encode returned features for 1 item\(s\) but was given 2 \(sample 0, part 0; sample 1, part 1\)/);
    model.dispose();
  });

  it('a disposed model says so instead of failing inside an op', async () => {
    const model = build(FAMILIES[0]![1]);
    const item = model.prepare('toy', { cls: 1 });
    model.dispose();
    const sample: ComposedSample = [{ text: [BOS] }, { modality: 'toy', item }];
    const message = /this composed model has been disposed \(model\.dispose\(\) freed its weights\).*build a new one with compose\(\)/;
    expect(() => model.loss([sample])).toThrow(message);
    await expect(model.generate(sample, { maxNewTokens: 2 })).rejects.toThrow(message);
  });
});

describe('a batched encode split back into items with one tf.split (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  /** The obvious batched plugin: every item's rows through the encoder at once, then tf.split per item. */
  function splittingModality(): Modality<number[], Float32Array> {
    const encoder = new Linear(RAW, 8);
    return {
      name: 'sig',
      module: new ModalityModule({ encoder }),
      prepare: (raw) => Float32Array.from(raw),
      tokensFor: (item) => item.length / RAW,
      continuousIn: {
        featureDim: 8,
        encode(items) {
          const counts = items.map((item) => item.length / RAW);
          const rows = tf.tensor2d(Float32Array.from(items.flatMap((item) => Array.from(item))), [counts.reduce((a, b) => a + b, 0), RAW]);
          return { features: tf.split(encoder.forward(rows), counts, 0), tokensPerItem: counts };
        },
      },
    };
  }

  it('trains with a one-item batch: the encoder gets gradients, nothing leaks', () => {
    for (const strategy of [earlyFusion(), gatedCrossAttention({ layers: [0], resampler: PERCEIVER })]) {
      const sig = splittingModality();
      const model = compose({ backbone: tinyBackbone(), modalities: { sig }, fusion: { sig: strategy }, placeholders: { sig: TOY_ID } });
      openGates(model); // cross-attention's gates start at zero, which would zero the encoder's gradient
      const before = tf.memory().numTensors;
      const sample: ComposedSample = [{ text: [BOS] }, { modality: 'sig', raw: Array.from({ length: 2 * RAW }, (_, i) => Math.sin(i)) }, { text: [5, 6] }];
      const { value, grads } = tf.variableGrads(() => model.loss([sample]), sig.module!.trainableVariables());
      const norms = Object.values(grads).map((g) => tf.tidy(() => tf.norm(g).dataSync()[0]!));
      expect(norms.length).toBe(2);
      expect(norms.every((n) => n > 0)).toBe(true);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    }
  });
});
