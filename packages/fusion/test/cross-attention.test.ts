// Gated cross-attention (Flamingo / Llama 3.2) in a composed model: identity with the frozen LLM at init, media
// masking ('latest' / 'all', text before media), cached generation against uncached and against step-by-step
// forwards, media keys/values computed once, and no leaked tensors.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { CausalLM, generate, isExtensionParameter } from '@chimera/llm';
import { compose, gatedCrossAttention, type ComposedSample, type GatedCrossAttentionFusionOptions } from '../src/index';
import { BOS, IMAGE_ID, exactlyEqual, openGates, testImage, tinyBackbone, tinyImageModality } from './helpers/toy';

const PERCEIVER = { type: 'perceiver', numLatents: 4, depth: 1, heads: 2, headDim: 8, ffMult: 2 } as const;

/** A Flamingo-style model and a plain copy of its LLM (the frozen LLM the identity is checked against). */
function flamingo(options: GatedCrossAttentionFusionOptions = {}, markers = true) {
  const backbone = tinyBackbone();
  const plain = new CausalLM(backbone.config);
  plain.loadStateDict(backbone.stateDict());
  const image = tinyImageModality();
  const model = compose({
    backbone,
    modalities: { image },
    fusion: { image: gatedCrossAttention({ layers: 'all', resampler: PERCEIVER, ...options }) },
    placeholders: markers ? { image: IMAGE_ID } : {},
  });
  return { model, plain, image };
}

/** Logits of the plain LLM on the composed batch's ids (markers included), right-padded like the batch. */
function plainLogits(plain: CausalLM, ids: Int32Array, batch: number, length: number, paddingMask: tf.Tensor): tf.Tensor {
  return tf.tidy(() => plain.forward({ inputIds: tf.tensor2d(ids, [batch, length], 'int32'), paddingMask }).logits);
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('at init (zero gates) the text logits equal the frozen LLM\'s exactly, with and without images', () => {
    const { model, plain, image } = flamingo();
    const a = image.prepare(testImage(1));
    const b = image.prepare(testImage(2));
    const withImages: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'image', item: a }, { text: [6, 7, 8] }, { modality: 'image', item: b }, { text: [9] }],
      [{ text: [BOS, 4, 4] }],
      [{ modality: 'image', item: b }, { text: [3, 2] }],
    ];
    const textOnly: ComposedSample[] = [[{ text: [BOS, 5, 6] }], [{ text: [BOS, 7] }]];
    for (const samples of [withImages, textOnly]) {
      const out = model.forward(samples);
      const { inputIds, batchSize, length } = model.layout(samples);
      const reference = plainLogits(plain, inputIds, batchSize, length, out.paddingMask);
      expect(exactlyEqual(out.logits, reference)).toBe(true);
      tf.dispose([out, reference]);
    }
    // The check can fail: with open gates the logits after an image differ.
    openGates(model);
    const out = model.forward(withImages);
    const layout = model.layout(withImages);
    const reference = plainLogits(plain, layout.inputIds, layout.batchSize, layout.length, out.paddingMask);
    expect(exactlyEqual(out.logits, reference)).toBe(false);
    tf.dispose([out, reference]);
    model.dispose();
    plain.dispose();
  });

  it('only the LLM extensions and the resampler are new parameters; the LLM keeps its names', () => {
    const { model, plain } = flamingo();
    const names = model.namedParameters().map(([n]) => n);
    const llmNames = names.filter((n) => n.startsWith('llm.')).map((n) => n.slice(4));
    expect(llmNames.filter((n) => !isExtensionParameter(n)).sort()).toEqual(Object.keys(plain.stateDict()).sort());
    expect(names.filter((n) => n.startsWith('llm.model.inserted.')).every((n) => /^llm\.model\.inserted\.before_[01]_xattn_image\./.test(n))).toBe(true);
    expect(model.parameterGroups().map((g) => g.name)).toEqual(['llm', 'image.encoder', 'image.resampler', 'image.xattn']);
    model.dispose();
    plain.dispose();
  });
});

describe('media masking (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  // Blocks after the last layer: each position's logits then depend on media only through its own cross-attention.
  const last = (mode: 'latest' | 'all') => flamingo({ layers: 1, position: 'after', mode });

  function logitsFor(model: ReturnType<typeof flamingo>['model'], first: unknown, second: unknown): number[][] {
    const out = model.forward([
      [{ text: [BOS, 5] }, { modality: 'image', item: first }, { text: [6, 7] }, { modality: 'image', item: second }, { text: [8, 9] }],
    ]);
    const rows = (out.logits.arraySync() as number[][][])[0]!;
    tf.dispose(out);
    return rows;
  }

  const same = (a: number[], b: number[]) => a.every((v, i) => v === b[i]);

  it.each(['latest', 'all'] as const)("mode '%s': text before media is unaffected; later text sees what the mode allows", (mode) => {
    const { model, plain, image } = last(mode);
    openGates(model);
    const a = image.prepare(testImage(1));
    const a2 = image.prepare(testImage(11));
    const b = image.prepare(testImage(2));
    const base = logitsFor(model, a, b);
    const perturbed = logitsFor(model, a2, b);
    // Positions: 0 BOS, 1 '5', 2 <image> A, 3 '6', 4 '7', 5 <image> B, 6 '8', 7 '9'.
    for (const t of [0, 1]) expect(same(base[t]!, perturbed[t]!)).toBe(true);
    for (const t of [2, 3, 4]) expect(same(base[t]!, perturbed[t]!)).toBe(false);
    for (const t of [5, 6, 7]) expect(same(base[t]!, perturbed[t]!)).toBe(mode === 'latest');
    // Text before media gets a zero cross-attention output: with only the feed-forward gates closed (Flamingo
    // applies the feed-forward everywhere) it equals the plain LLM, while text after an image does not.
    for (const [name, v] of model.namedParameters()) if (name.endsWith('ff_gate')) tf.tidy(() => v.assign(tf.zerosLike(v)));
    const gated = logitsFor(model, a, b);
    const reference = tf.tidy(
      () => plain.forward({ inputIds: tf.tensor2d([[BOS, 5, IMAGE_ID, 6, 7, IMAGE_ID, 8, 9]], [1, 8], 'int32') }).logits.arraySync() as number[][][],
    );
    const gap = (t: number) => Math.max(...reference[0]![t]!.map((v, i) => Math.abs(v - gated[t]![i]!)));
    for (const t of [0, 1]) expect(gap(t)).toBeLessThan(1e-5);
    for (const t of [2, 3, 4, 5, 6, 7]) expect(gap(t)).toBeGreaterThan(1e-3);
    model.dispose();
    plain.dispose();
  });

  it('maskFeedForward (Llama 3.2): a row without media is exactly the plain LLM even with open gates', () => {
    const { model, plain, image } = flamingo({ maskFeedForward: true });
    openGates(model);
    const out = model.forward([[{ text: [BOS, 5, 6, 7] }], [{ modality: 'image', item: image.prepare(testImage(3)) }, { text: [5] }]]);
    const reference = tf.tidy(() => plain.forward({ inputIds: tf.tensor2d([[BOS, 5, 6, 7]], [1, 4], 'int32') }).logits);
    const row0 = tf.slice(out.logits, [0, 0, 0], [1, 4, -1]);
    expect(exactlyEqual(row0, reference)).toBe(true);
    tf.dispose([out, reference, row0]);
    model.dispose();
    plain.dispose();
  });
});

describe.each(TEST_BACKENDS)('generation with cached media (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it.each([
    ['latest', true],
    ['all', true],
    ['latest', false],
  ] as const)("mode '%s' (markers: %s): cached greedy generation equals uncached and step-by-step forwards", async (mode, markers) => {
    // Without markers a prompt that ends with an image has no position that sees it: only generated tokens do.
    const { model, plain, image } = flamingo({ mode }, markers);
    openGates(model, 1.5);
    const a = image.prepare(testImage(4));
    const b = image.prepare(testImage(5));
    const prompts: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'image', item: a }, { text: [6, 7] }, { modality: 'image', item: b }],
      [{ modality: 'image', item: b }, { text: [3] }],
    ];
    // A pass-through logits processor records what each step saw, per row.
    const recorder = () => {
      const steps: number[][][] = [];
      return { steps, processor: { process: (logits: tf.Tensor2D) => (steps.push(logits.arraySync()), logits) } };
    };
    const seenCached = recorder();
    const seenUncached = recorder();
    const options = { maxNewTokens: 5, eosTokenId: null };
    const cached = await expectNoLeaks(() => model.generate(prompts, { ...options, logitsProcessors: [seenCached.processor] }), 'cached generation');
    const uncached = await expectNoLeaks(
      () => model.generate(prompts, { ...options, useCache: false, logitsProcessors: [seenUncached.processor] }),
      'uncached generation',
    );
    expect(cached.tokens).toEqual(uncached.tokens);
    // Independent of the generation path: one forward per step on the growing sample (right-padded, media
    // placed anew), compared with the logits each generation step used.
    const gap = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    for (let row = 0; row < prompts.length; row++) {
      const generated = cached.tokens[row]!;
      for (let step = 0; step < options.maxNewTokens; step++) {
        const sample = [...(prompts[row] as object[]), ...(step > 0 ? [{ text: generated.slice(0, step) }] : [])] as ComposedSample;
        const out = model.forward([sample]);
        const last = tf.tidy(() => Array.from(tf.slice(out.logits, [0, out.logits.shape[1]! - 1, 0], [1, 1, -1]).dataSync()));
        tf.dispose(out);
        expect(gap(seenCached.steps[step]![row]!, last)).toBeLessThan(1e-4);
        expect(gap(seenUncached.steps[step]![row]!, last)).toBeLessThan(1e-4);
      }
    }
    // The media changed the answer: the plain LLM on the same ids says something else.
    const plainTokens = await generate(plain, [markers ? [BOS, 5, IMAGE_ID, 6, 7, IMAGE_ID] : [BOS, 5, 6, 7]], options);
    expect(plainTokens.tokens[0]).not.toEqual(cached.tokens[0]);
    model.dispose();
    plain.dispose();
  });

  it('runs the encoder once per generation and projects media keys/values once per block with the cache', async () => {
    const { model, plain, image } = flamingo();
    openGates(model);
    const input = image.continuousIn!;
    const encode = input.encode;
    let encodes = 0;
    input.encode = (items, options) => {
      encodes++;
      return encode(items, options);
    };
    const blocks = model.llm.model.inserted.list().map((info) => info.block as unknown as { attn: { k_proj: { forward: (x: tf.Tensor) => tf.Tensor } } });
    let projections = 0;
    for (const block of blocks) {
      const kProj = block.attn.k_proj;
      const forward = kProj.forward.bind(kProj);
      kProj.forward = (x) => {
        projections++;
        return forward(x);
      };
    }
    const prompt: ComposedSample = [{ text: [BOS] }, { modality: 'image', item: image.prepare(testImage(6)) }, { text: [5] }];
    await model.generate(prompt, { maxNewTokens: 4, eosTokenId: null });
    expect(encodes).toBe(1);
    expect(projections).toBe(blocks.length);
    encodes = 0;
    projections = 0;
    await model.generate(prompt, { maxNewTokens: 4, eosTokenId: null, useCache: false });
    expect(encodes).toBe(1);
    expect(projections).toBe(blocks.length * 4);
    model.dispose();
    plain.dispose();
  });
});
