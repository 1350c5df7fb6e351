// Tokenized early fusion (Chameleon): the grown vocabulary leaves text untouched (bitwise logits, before and after
// training only the new rows), items pack as <begin> offset+codes <end> with LM targets, the loss options (code
// weight, z-loss) add exactly their terms, generateImage gives N codes in range (cached = uncached, w = 1 =
// unguided, w = 4 differs), errors (code out of range, budget under the grid, guidance without an unconditional
// path), no leaks, and a checkpoint of the trainable rows reloads identically.
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Trainer, manualSeed, TOKEN_KIND } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { causalLMLoss, generate, zLoss } from '@chimera/llm';
import { compose, tokenizedFusion, type ComposedModel, type ComposedSample, type TokenizedFusion, type TokenizedFusionOptions } from '../src/index';
import { BOS, VOCAB, tinyBackbone } from './helpers/toy';
import { TOY_CODEBOOK, TOY_CODES, codesFor, toyCodesModality } from './helpers/toy-codes';

const TEXT = [
  [BOS, 5, 9, 3, 7, 2],
  [BOS, 2, 3, 4, 11, 12],
];

function build(options: TokenizedFusionOptions = {}, seed = 3): { model: ComposedModel; fusion: TokenizedFusion } {
  manualSeed(seed);
  const fusion = tokenizedFusion(options);
  const model = compose({ backbone: tinyBackbone(), modalities: { img: toyCodesModality() }, fusion: { img: fusion } });
  return { model, fusion };
}

function imageSample(label: number, trainedPrompt = false): ComposedSample {
  return [{ text: [BOS, 4 + label], trained: trainedPrompt }, { modality: 'img', item: { codes: codesFor(label) } }];
}

/** Logits of the plain backbone (same seed) on text ids, before any growth. */
function plainLogits(seed = 3): number[][][] {
  manualSeed(seed);
  const backbone = tinyBackbone();
  const out = tf.tidy(() => backbone.forward({ inputIds: tf.tensor2d(TEXT, [2, TEXT[0]!.length], 'int32') }).logits.arraySync() as number[][][]);
  backbone.dispose();
  return out;
}

function textLogits(model: ComposedModel): number[][][] {
  return tf.tidy(() => {
    const logits = model.forward(TEXT.map((t) => [{ text: t }])).logits;
    return tf.slice(logits, [0, 0, 0], [-1, -1, VOCAB]).arraySync() as number[][][];
  });
}

describe.each(TEST_BACKENDS)('tokenized fusion (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));
  const models: ComposedModel[] = [];
  const track = <T extends { model: ComposedModel }>(built: T): T => {
    models.push(built.model);
    return built;
  };
  afterEach(() => {
    for (const m of models.splice(0)) m.dispose();
  });

  it('grows the vocabulary by codebook + 2; text rows and text-only logits are bitwise those of the plain LLM', () => {
    const reference = plainLogits();
    const { model, fusion } = track(build());
    expect(model.llm.config.vocabSize).toBe(VOCAB + TOY_CODEBOOK + 2);
    expect([fusion.codeOffset, fusion.beginImageId, fusion.endImageId]).toEqual([VOCAB, VOCAB + TOY_CODEBOOK, VOCAB + TOY_CODEBOOK + 1]);
    expect(textLogits(model)).toEqual(reference);
    // New rows start at the text rows' mean plus their std of noise: distinct from each other.
    const rows = tf.tidy(() => tf.slice(model.llm.model.embed_tokens.weight, [VOCAB, 0], [-1, -1]).arraySync() as number[][]);
    expect(new Set(rows.map((r) => r.join(','))).size).toBe(TOY_CODEBOOK + 2);
  });

  it('text generation with the image ids suppressed gives the plain LLM\'s tokens', async () => {
    manualSeed(3);
    const plain = tinyBackbone();
    const expected = await generate(plain, TEXT, { maxNewTokens: 6, eosTokenId: null });
    plain.dispose();
    const { model, fusion } = track(build());
    expect(fusion.imageTokenIds).toEqual(Array.from({ length: TOY_CODEBOOK + 2 }, (_, i) => VOCAB + i));
    const got = await model.generate(TEXT.map((t) => [{ text: t }]), { maxNewTokens: 6, eosTokenId: null, suppressTokens: fusion.imageTokenIds });
    expect(got.tokens).toEqual(expected.tokens);
  });

  it('after training only the new rows (frozen LLM), text-only logits are still bitwise the plain LLM', async () => {
    const reference = plainLogits();
    const { model, fusion } = track(build({ frozenTextRows: true }));
    model.trainOnly(['llm.model.embed_tokens', 'llm.lm_head']);
    const codeRows = () => tf.tidy(() => tf.slice(model.llm.model.embed_tokens.weight, [VOCAB, 0], [-1, -1]).arraySync());
    const before = codeRows();
    const trainer = new Trainer<ComposedModel, ComposedSample[]>({
      model,
      loss: (m, batch) => m.loss(batch),
      batchAt: (step) => [imageSample(step % 4), imageSample((step + 1) % 4)],
      steps: 4,
      optimizer: { learningRate: 0.05, weightDecay: 0.1 },
      progress: false,
      onStep: () => fusion.restoreTextRows(),
    });
    await trainer.fit();
    trainer.dispose();
    expect(codeRows()).not.toEqual(before);
    expect(textLogits(model)).toEqual(reference);
  });

  it('packs an item as <begin> offset + codes <end> in the text vocabulary, all predicted by the LM loss', () => {
    const { model, fusion } = track(build());
    const layout = model.layout([imageSample(1)]);
    const ids = Array.from(layout.inputIds);
    const run = [fusion.beginImageId, ...codesFor(1).map((c) => VOCAB + c), fusion.endImageId];
    expect(ids).toEqual([BOS, 5, ...run]);
    expect(Array.from(layout.tokenKind).slice(2)).toEqual(run.map(() => TOKEN_KIND.codes));
    const out = model.forward([imageSample(1)]);
    expect(Array.from(out.targets.dataSync()).slice(1, 1 + run.length)).toEqual(run);
    expect(Array.from(out.targetMask.dataSync())).toEqual([0, ...run.map(() => 1), 0]);
    tf.dispose(out as unknown as tf.TensorContainer);
  });

  it('loss options: codeLossWeight w gives (text nll + w * code nll) / positions; 0 leaves codes untrained; z-loss adds its term', () => {
    const batch = [imageSample(0, true), imageSample(2, true)];
    const { model } = track(build({ codeLossWeight: 3, zLoss: 1e-2 }));
    const expected = tf.tidy(() => {
      const out = model.forward(batch);
      const isCode = tf.cast(tf.greaterEqual(out.targets, VOCAB), 'float32');
      const codeMask = tf.mul(out.targetMask, isCode);
      const textMask = tf.sub(out.targetMask, codeMask);
      const n = tf.sum(out.targetMask).dataSync()[0]!;
      const nc = tf.sum(codeMask).dataSync()[0]!;
      const text = causalLMLoss(out.logits, out.targets, textMask).dataSync()[0]! * (n - nc);
      const codes = causalLMLoss(out.logits, out.targets, codeMask).dataSync()[0]! * nc;
      return { weighted: (text + 3 * codes) / n, z: zLoss(out.logits, out.targetMask, 1e-2).dataSync()[0]! };
    });
    const got = tf.tidy(() => {
      const { total, terms } = model.lossTerms(batch);
      return { total: total.dataSync()[0]!, z: terms['img.z_loss']!.dataSync()[0]! };
    });
    expect(got.z).toBeCloseTo(expected.z, 6);
    expect(got.total).toBeCloseTo(expected.weighted + expected.z, 4);

    const { model: untrained } = track(build({ codeLossWeight: 0 }));
    const out = untrained.forward([imageSample(0, true)]);
    // Only the prompt's text predicts (BOS -> label); no code, marker or end target counts.
    expect(Array.from(out.targetMask.dataSync()).reduce((a, b) => a + b, 0)).toBe(1);
    tf.dispose(out as unknown as tf.TensorContainer);
  });

  it('generateImage: N codes in range, begin/end markers, detokenized; cached equals uncached; w = 1 equals unguided, w = 4 differs', async () => {
    const { model, fusion } = track(build({ unconditionalPrompt: [BOS] }));
    const prompts = [[{ text: [BOS, 4] }], [{ text: [BOS, 6, 7] }]] as ComposedSample[];
    const greedy = await fusion.generateImage(model, prompts);
    expect(greedy.codes).toHaveLength(2);
    for (const row of greedy.codes) {
      expect(row).toHaveLength(TOY_CODES);
      expect(row.every((c) => Number.isInteger(c) && c >= 0 && c < TOY_CODEBOOK)).toBe(true);
    }
    expect(greedy.outputs).toEqual(greedy.codes);
    expect(greedy.tokens[0]).toEqual([fusion.beginImageId, ...greedy.codes[0]!.map((c) => VOCAB + c), fusion.endImageId]);
    expect((await fusion.generateImage(model, prompts, { useCache: false })).codes).toEqual(greedy.codes);

    const sampling = { temperature: 1, seed: 11 };
    const plain = await fusion.generateImage(model, prompts, sampling);
    const one = await fusion.generateImage(model, prompts, { ...sampling, guidance: 1 });
    const four = await fusion.generateImage(model, prompts, { ...sampling, guidance: 4 });
    const fourNoCache = await fusion.generateImage(model, prompts, { ...sampling, guidance: 4, useCache: false });
    expect(one.codes).toEqual(plain.codes);
    expect(four.codes).not.toEqual(plain.codes);
    expect(fourNoCache.codes).toEqual(four.codes);
  });

  it('generateImage leaks nothing (guided, sampled) and a single prompt works', async () => {
    const { model, fusion } = track(build({ unconditionalPrompt: [BOS] }));
    const result = await expectNoLeaks(() => fusion.generateImage(model, [{ text: [BOS, 5] }], { guidance: 2, temperature: 0.8, topK: 4, seed: 1 }), 'generateImage');
    expect(result.codes).toHaveLength(1);
    expectNoLeaksSync(() => tf.dispose(model.loss([imageSample(1)])), 'loss');
    const { model: weighted } = track(build({ codeLossWeight: 2, zLoss: 1e-3 }));
    expectNoLeaksSync(() => tf.dispose(weighted.loss([imageSample(1), imageSample(2, true)])), 'loss with code weight and z-loss');
    expectNoLeaksSync(() => {
      const { value, grads } = tf.variableGrads(() => weighted.loss([imageSample(3)]));
      tf.dispose([value, ...Object.values(grads)]);
    }, 'gradients');
  });

  it('errors: a code out of range, a budget under the grid, guidance without an unconditional path', async () => {
    const { model, fusion } = track(build());
    const bad: ComposedSample = [{ text: [BOS] }, { modality: 'img', item: { codes: [0, 1, TOY_CODEBOOK, 2] } }];
    expect(() => model.loss([bad])).toThrow(/gave code 8 at index 2 \(sample 0, part 1\), outside its codebook \[0, 8\)/);
    await expect(fusion.generateImage(model, [{ text: [BOS] }], { maxNewTokens: 3 })).rejects.toThrow(
      /budget maxNewTokens = 3 is smaller than the grid of 4 codes/,
    );
    await expect(fusion.generateImage(model, [{ text: [BOS] }], { guidance: 3 })).rejects.toThrow(/needs an unconditional path, but this model has none/);
    expect(() => tokenizedFusion({ codeLossWeight: -1 })).toThrow(/codeLossWeight must be a finite number >= 0/);
    // A codec whose codes do not fit what it declares.
    const lying = tokenizedFusion();
    const m2 = compose({ backbone: tinyBackbone(), modalities: { img: toyCodesModality('img', 4) }, fusion: { img: lying } });
    models.push(m2);
    expect(() => m2.layout([[{ modality: 'img', item: { codes: [0, 1, 5, 2] } }]])).toThrow(/outside its codebook \[0, 4\)/);
  });

  it('a checkpoint of the trainable rows reloads into a fresh model identically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenized-'));
    try {
      const { model } = track(build({}, 7));
      model.trainOnly(['llm.model.embed_tokens', 'llm.lm_head']);
      const trainer = new Trainer<ComposedModel, ComposedSample[]>({
        model,
        loss: (m, batch) => m.loss(batch),
        batchAt: (step) => [imageSample(step % 4)],
        steps: 2,
        optimizer: { learningRate: 0.05 },
        progress: false,
      });
      await trainer.fit();
      trainer.dispose();
      await model.save(join(dir, 'ckpt'), { trainableOnly: true });
      const { model: fresh } = track(build({}, 7));
      await fresh.load(join(dir, 'ckpt'));
      const logits = (m: ComposedModel) => tf.tidy(() => m.forward([imageSample(2)]).logits.arraySync());
      expect(logits(fresh)).toEqual(logits(model));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
