// Clear errors: placeholder/feature mismatches (core's message), missing media inputs, media for a modality the
// model lacks, unknown names in compose's maps, placeholder problems, and strategies misused.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setupTestBackend } from '@chimera/core/testing';
import { ByteTokenizer } from '@chimera/llm';
import { compose, earlyFusion, gatedCrossAttention, type ComposedSample } from '../src/index';
import { BOS, IMAGE_ID, TOY_ID, testImage, tinyBackbone, tinyImageModality, toyModality } from './helpers/toy';

describe('errors (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('features that disagree with tokensFor (and so with the placeholders) name the item, leaking nothing', () => {
    const toy = toyModality({ extraFeatures: 1 });
    const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: earlyFusion() }, placeholders: { toy: TOY_ID } });
    const item = toy.prepare({ cls: 1, tokens: 3 });
    const before = tf.memory().numTensors;
    expect(() => model.forward([[{ text: [BOS] }, { modality: 'toy', item }]])).toThrow(
      /sample 0, part 1: the 'toy' encoder gave this item 4 features, but toy\.tokensFor\(item\) says 3/,
    );
    expect(tf.memory().numTensors).toBe(before);
    // A pre-expanded run of the wrong length in a token sample.
    const good = toyModality();
    const fine = compose({ backbone: tinyBackbone(), modalities: { toy: good }, fusion: { toy: earlyFusion() }, placeholders: { toy: TOY_ID } });
    const item3 = good.prepare({ cls: 1, tokens: 3 });
    expect(() => fine.forward([{ ids: [BOS, TOY_ID, TOY_ID, 5], media: [{ modality: 'toy', item: item3 }] }])).toThrow(
      /toy item 0 takes 3 position\(s\) but the sequence has a run of 2 <toy> placeholder\(s\) at index 1/,
    );
    model.dispose();
    fine.dispose();
  });

  it('a placeholder without its media item is a missing-input error', async () => {
    const image = tinyImageModality();
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: earlyFusion() }, placeholders: { image: IMAGE_ID } });
    expect(() => model.forward([{ ids: [BOS, IMAGE_ID, 5], media: [] }])).toThrow(
      /sample 0: the <image> placeholder \(id 30\) at index 1 has no image item: the sample gives 0 media item\(s\) for 1 placeholder id\(s\)/,
    );
    expect(() => model.forward([[{ text: [BOS, IMAGE_ID, 5] }]])).toThrow(
      /sample 0, part 0: the text holds the <image> placeholder \(id 30\) at index 1, but no image item is given there/,
    );
    const item = image.prepare(testImage(1));
    expect(() => model.forward([{ ids: [BOS, IMAGE_ID, 5], media: [{ modality: 'image', item }, { modality: 'image', item }] }])).toThrow(
      /image item 0 takes 16 position\(s\) but the sequence has a run of 1 .*the sample gives 2 media item\(s\) for 1 placeholder id\(s\)/,
    );
    const pre = Array.from({ length: 16 }, () => IMAGE_ID);
    expect(() => model.forward([{ ids: [BOS, ...pre, 5], media: [{ modality: 'image', item }, { modality: 'image', item }] }])).toThrow(
      /the sample gives 2 media item\(s\) but only 1 placeholder\(s\)/,
    );
    expect(() => model.streamGenerate([{ ids: [BOS, IMAGE_ID], media: [] }], { maxNewTokens: 2 })).toThrow(/has no image item/);
    model.dispose();
  });

  it('an image given to a model without a vision plugin says which modalities it has', async () => {
    const toy = toyModality();
    const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: earlyFusion() } });
    const samples: ComposedSample[] = [[{ text: [BOS] }, { modality: 'image', raw: testImage(1) }]];
    const message = /sample 0, part 1 gives an 'image' item, but this model has no 'image' modality \(it has: toy\)/;
    expect(() => model.forward(samples)).toThrow(message);
    expect(() => model.loss(samples)).toThrow(message);
    await expect(model.generate(samples[0]!, { maxNewTokens: 2 })).rejects.toThrow(message);
    expect(() => model.tokensFor('image', {})).toThrow(/this model has no 'image' modality \(it has: toy\)/);
    model.dispose();
  });

  it('bad generation options fail after the prompt tensors were made, and free them', async () => {
    const toy = toyModality();
    const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: earlyFusion() } });
    const prompt: ComposedSample = [{ text: [BOS] }, { modality: 'toy', item: toy.prepare({ cls: 1 }) }];
    const before = tf.memory().numTensors;
    await expect(model.generate(prompt, {})).rejects.toThrow(/set maxNewTokens/);
    await expect(model.generate(prompt, { maxNewTokens: 2, topP: 2 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('unknown or missing modality names in compose\'s maps', () => {
    const backbone = () => tinyBackbone();
    const toy = toyModality();
    expect(() => compose({ backbone: backbone(), modalities: { toy }, fusion: { toy: earlyFusion(), imgae: earlyFusion() } })).toThrow(
      /fusion names modality 'imgae', which is not among the modalities \(toy\)/,
    );
    expect(() => compose({ backbone: backbone(), modalities: { toy }, fusion: {} })).toThrow(/modality 'toy' has no fusion strategy/);
    expect(() => compose({ backbone: backbone(), modalities: { image: toy }, fusion: { image: earlyFusion() } })).toThrow(
      /key 'image' holds modality 'toy'/,
    );
    expect(() => compose({ backbone: backbone(), modalities: { toy }, fusion: { toy: earlyFusion() }, placeholders: { imgae: 3 } })).toThrow(
      /placeholders names modality 'imgae', which is not among the modalities \(toy\)/,
    );
    const llm = toyModality({ name: 'llm' });
    expect(() => compose({ backbone: backbone(), modalities: [llm], fusion: { llm: earlyFusion() } })).toThrow(/may not be called 'llm'/);
    const shared = earlyFusion();
    const other = toyModality({ name: 'other' });
    expect(() => compose({ backbone: backbone(), modalities: [toy, other], fusion: { toy: shared, other: shared } })).toThrow(
      /fusion\.other is the same strategy object as fusion\.toy/,
    );
    expect(() => compose({ backbone: {} as never, modalities: { toy }, fusion: { toy: earlyFusion() } })).toThrow(/backbone must be a CausalLM/);
  });

  it('placeholder ids and strings are checked', () => {
    const toy = toyModality();
    const make = (placeholders: Record<string, number | string>, tokenizer?: ByteTokenizer) =>
      compose({ backbone: tinyBackbone({ vocabSize: 300 }), modalities: { toy }, fusion: { toy: earlyFusion() }, placeholders, tokenizer });
    expect(() => make({ toy: 300 })).toThrow(/the toy placeholder id 300 is outside the LLM's vocabulary \[0, 300\)/);
    expect(() => make({ toy: '<toy>' })).toThrow(/placeholder '<toy>' for toy is a token string; pass the tokenizer too/);
    expect(() => make({ toy: '<toy>' }, new ByteTokenizer())).toThrow(/the tokenizer has no token '<toy>'.*addTokensToModel/);
  });

  it('a strategy fails clearly before attach, and a backbone too shallow for the layer choice', () => {
    expect(() => earlyFusion().tokensFor({})).toThrow(/not attached to a model yet; pass it to compose/);
    const toy = toyModality();
    expect(() => compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: gatedCrossAttention() } })).toThrow(
      /gatedCrossAttention\('toy'\): the selection \{"every":4\} picks no layer/,
    );
  });

  it('a cross-attention block called outside the composed model names the missing context', () => {
    const toy = toyModality();
    const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: gatedCrossAttention({ layers: [0], resampler: false }) } });
    expect(() => tf.tidy(() => model.llm.forward({ inputIds: tf.tensor2d([[BOS, 5]], [1, 2], 'int32') }))).toThrow(
      /the forward context has no 'cross-attention:toy' entry.*Run the model through ComposedModel/,
    );
    model.dispose();
  });
});
