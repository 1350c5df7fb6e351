// Early fusion (LLaVA-style splice): projected features land at the placeholder positions of interleaved
// samples, resamplers fix the token count, token-form samples equal part-form ones, gradients reach the
// projector and encoder, and cached generation matches step-by-step forwards.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { gelu, type SequenceLayout } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync, gradCheckVariables, setupTestBackend } from '@chimera/core/testing';
import type { CausalLMInputs } from '@chimera/llm';
import { compose, earlyFusion, type ComposedModel, type ComposedSample, type EarlyFusionOptions, type MLPProjector } from '../src/index';
import { BOS, RAW, TOY_ID, testImage, tinyBackbone, tinyImageModality, toyModality, type ToyItem, type ToyModality } from './helpers/toy';

function toyModel(options: EarlyFusionOptions = {}): { model: ComposedModel; toy: ToyModality } {
  const toy = toyModality();
  const model = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: earlyFusion(options) }, placeholders: { toy: TOY_ID } });
  return { model, toy };
}

/** The inputsEmbeds the backbone receives on the next forward call. */
function captureEmbeds(model: ComposedModel): { embeds: number[][][] | null } {
  const seen: { embeds: number[][][] | null } = { embeds: null };
  const decoder = model.llm.model;
  const forward = decoder.forward.bind(decoder);
  decoder.forward = (inputs: CausalLMInputs, options) => {
    seen.embeds = (inputs.inputsEmbeds?.arraySync() as number[][][]) ?? null;
    return forward(inputs, options);
  };
  return seen;
}

/** projector(encoder(item)) written out with plain tfjs ops from the weights (LLaVA-1.5's Linear, GELU, Linear). */
function expectedRows(model: ComposedModel, toy: ToyModality, item: ToyItem): number[][] {
  const state = model.stateDict();
  return tf.tidy(() => {
    const raw = tf.tensor2d(item.values, [item.tokens, RAW]);
    const features = tf.add(tf.matMul(raw, state['toy.encoder.weight']! as tf.Tensor2D), state['toy.encoder.bias']!);
    const hidden = gelu(tf.add(tf.matMul(features as tf.Tensor2D, state['toy.projector.linear_1.weight']! as tf.Tensor2D), state['toy.projector.linear_1.bias']!));
    return tf.add(tf.matMul(hidden as tf.Tensor2D, state['toy.projector.linear_2.weight']! as tf.Tensor2D), state['toy.projector.linear_2.bias']!).arraySync() as number[][];
  });
}

const gap = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('splices projected rows at every placeholder position of interleaved samples; text rows come from the table', () => {
    const { model, toy } = toyModel();
    const items = [toy.prepare({ cls: 0, seed: 1 }), toy.prepare({ cls: 1, seed: 2, tokens: 2 }), toy.prepare({ cls: 2, seed: 3, tokens: 4 })];
    const samples: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'toy', item: items[0] }, { text: [6] }, { modality: 'toy', item: items[1] }, { text: [7, 8] }],
      [{ modality: 'toy', item: items[2] }, { text: [9] }, { modality: 'toy', item: items[0] }],
    ];
    const seen = captureEmbeds(model);
    const out = model.forward(samples);
    const layout: SequenceLayout = model.layout(samples);
    const table = model.llm.model.embed_tokens.weight.arraySync() as number[][];
    // Expected rows per position, built from the samples alone.
    const expected: (number[] | null)[][] = [];
    for (const sample of samples) {
      const row: (number[] | null)[] = [];
      for (const part of sample as { text?: number[]; item?: ToyItem }[]) {
        if (part.text) for (const id of part.text) row.push(table[id]!);
        else row.push(...expectedRows(model, toy, part.item!));
      }
      while (row.length < layout.length) row.push(null); // padding: not checked
      expected.push(row);
    }
    expect(layout.length).toBe(3 + 1 + 2 + 2 + 2); // longest row: BOS 5, 3 toy, 6, 2 toy, 7 8
    expected.forEach((row, b) =>
      row.forEach((want, t) => {
        if (want) expect(gap(seen.embeds![b]![t]!, want)).toBeLessThan(1e-5);
      }),
    );
    // Media positions carry the placeholder id and modality 1; text carries modality 0.
    expect(Array.from(layout.inputIds.slice(0, 10))).toEqual([BOS, 5, TOY_ID, TOY_ID, TOY_ID, 6, TOY_ID, TOY_ID, 7, 8]);
    expect(Array.from(layout.tokenModality.slice(10, 18))).toEqual([1, 1, 1, 1, 0, 1, 1, 1]);
    tf.dispose(out);
    model.dispose();
  });

  it.each([
    ['perceiver', { type: 'perceiver', numLatents: 5, depth: 1, heads: 2, headDim: 4 }],
    ['qformer', { type: 'qformer', numQueries: 4, depth: 1, heads: 2 }],
  ] as const)('with a %s resampler every item takes numLatents positions, whatever its feature count', (_, resampler) => {
    const { model, toy } = toyModel({ resampler, projector: 'linear' });
    const latents = 'numLatents' in resampler ? resampler.numLatents : resampler.numQueries;
    const short = toy.prepare({ cls: 0, tokens: 2 });
    const long = toy.prepare({ cls: 1, tokens: 7 });
    expect(model.tokensFor('toy', short)).toBe(latents);
    expect(model.tokensFor('toy', long)).toBe(latents);
    const samples: ComposedSample[] = [
      [{ text: [BOS] }, { modality: 'toy', item: short }, { text: [5] }, { modality: 'toy', item: long }],
      [{ text: [BOS, 6] }],
    ];
    const out = expectNoLeaksSync(() => model.forward(samples), 'forward with a resampler');
    const layout = model.layout(samples);
    expect(out.logits.shape[1]).toBe(1 + latents + 1 + latents);
    expect(layout.media.map((m) => m.length)).toEqual([latents, latents]);
    expect(model.parameterGroups().map((g) => g.name)).toEqual(['llm', 'toy.encoder', 'toy.resampler', 'toy.projector']);
    tf.dispose(out);
    model.dispose();
  });

  it('token samples (single or pre-expanded placeholders) equal part samples', () => {
    const { model, toy } = toyModel();
    const item = toy.prepare({ cls: 3, seed: 4 });
    const parts = model.forward([[{ text: [BOS, 5], trained: false }, { modality: 'toy', item }, { text: [6, 7] }]]);
    const single = model.forward([{ ids: [BOS, 5, TOY_ID, 6, 7], media: [{ modality: 'toy', item }], trained: [false, false, false, true, true] }]);
    const expanded = model.forward([
      { ids: [BOS, 5, TOY_ID, TOY_ID, TOY_ID, 6, 7], media: [{ modality: 'toy', item }], trained: [false, false, false, false, false, true, true] },
    ]);
    for (const other of [single, expanded]) {
      expect(other.logits.dataSync()).toEqual(parts.logits.dataSync());
      expect(other.targetMask.dataSync()).toEqual(parts.targetMask.dataSync());
    }
    // Only the answer is trained: position 4 (the last toy token) predicts 6, position 5 predicts 7.
    expect(Array.from(parts.targetMask.dataSync())).toEqual([0, 0, 0, 0, 1, 1, 0]);
    expect(Array.from(parts.targets.dataSync()).slice(4, 6)).toEqual([6, 7]);
    tf.dispose([parts, single, expanded]);
    model.dispose();
  });

  it('cached generation with images equals uncached and step-by-step forwards, without leaks', async () => {
    const { model, toy } = toyModel();
    const a = toy.prepare({ cls: 1, seed: 5 });
    const b = toy.prepare({ cls: 2, seed: 6, tokens: 2 });
    const prompts: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'toy', item: a }, { text: [6] }, { modality: 'toy', item: b }],
      [{ modality: 'toy', item: b }, { text: [7] }],
    ];
    const steps: number[][][] = [];
    const recorder = { process: (logits: tf.Tensor2D) => (steps.push(logits.arraySync()), logits) };
    const options = { maxNewTokens: 4, eosTokenId: null };
    const cached = await expectNoLeaks(() => model.generate(prompts, { ...options, logitsProcessors: [recorder] }), 'cached generation');
    const uncached = await expectNoLeaks(() => model.generate(prompts, { ...options, useCache: false }), 'uncached generation');
    expect(cached.tokens).toEqual(uncached.tokens);
    prompts.forEach((prompt, row) => {
      for (let step = 0; step < options.maxNewTokens; step++) {
        const sample = [...(prompt as object[]), ...(step > 0 ? [{ text: cached.tokens[row]!.slice(0, step) }] : [])] as ComposedSample;
        const out = model.forward([sample]);
        const last = tf.tidy(() => Array.from(tf.slice(out.logits, [0, out.logits.shape[1]! - 1, 0], [1, 1, -1]).dataSync()));
        tf.dispose(out);
        expect(gap(steps[step]![row]!, last)).toBeLessThan(1e-4);
      }
    });
    model.dispose();
  });
});

describe('gradients through the splice (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('the loss gradient reaches the projector and the encoder (finite differences)', () => {
    const { model, toy } = toyModel({ projector: 'mlp2x_gelu' });
    const item = toy.prepare({ cls: 2, seed: 8 });
    const loss = () => model.loss([[{ text: [BOS], trained: false }, { modality: 'toy', item }, { text: [5, 6] }]]);
    const projector = model.modalityParts('toy').children().find(([n]) => n === 'projector')![1] as unknown as MLPProjector;
    const report = gradCheckVariables(loss, [toy.encoder.weight, projector.linears[0]!.weight, projector.linears[1]!.bias!], {
      maxCoords: 12,
      eps: 1e-2,
    });
    expect(report.checked).toBe(12 + 12 + 12);
    const { value, grads } = tf.variableGrads(loss, [toy.encoder.weight]);
    expect(tf.tidy(() => tf.norm(grads[toy.encoder.weight.name]!).dataSync()[0]!)).toBeGreaterThan(1e-4);
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
  });

  it.each([1, 2])('through a resampler, %s item(s) in the batch, the gradient reaches the encoder', (count) => {
    const { model, toy } = toyModel({ resampler: { type: 'perceiver', numLatents: 2, depth: 1, heads: 2, headDim: 4 } });
    const items = Array.from({ length: count }, (_, i) => toy.prepare({ cls: i, seed: i, tokens: 2 + i }));
    const loss = () => model.loss([[{ text: [BOS], trained: false }, ...items.map((item) => ({ modality: 'toy', item })), { text: [5, 6] }]]);
    const { value, grads } = tf.variableGrads(loss, [toy.encoder.weight]);
    const norm = tf.tidy(() => tf.norm(grads[toy.encoder.weight.name]!).dataSync()[0]!);
    expect(norm).toBeGreaterThan(1e-5);
    expect(Number.isFinite(norm)).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
  });

  it('a real image plugin (tiny ViT, 16 tokens per image) splices through mlp2x_gelu', () => {
    const image = tinyImageModality();
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: earlyFusion() } });
    const item = image.prepare(testImage(1));
    expect(model.tokensFor('image', item)).toBe(16);
    const samples: ComposedSample[] = [[{ text: [BOS] }, { modality: 'image', item }, { text: [5] }, { modality: 'image', item }]];
    const out = model.forward(samples);
    expect(out.logits.shape).toEqual([1, 34, 32]);
    expect(model.layout(samples).media.map((m) => m.grid)).toEqual([
      { rows: 4, cols: 4 },
      { rows: 4, cols: 4 },
    ]);
    tf.dispose(out);
    model.dispose();
  });
});
