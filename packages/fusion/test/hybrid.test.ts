// NVLM-H's hybrid fusion: bitwise identity at init with thumbnail-only early fusion (the tile path adds exactly
// nothing while its gates are 0), tiles changing the logits once a gate opens, what tile tags and text see, cached
// generation against greedy decoding by full forwards, the tile budget and other input errors, parameter groups and
// presets, gradients reaching both paths, and no leaked tensors.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { manualSeed, type EncodedFeatures, type Modality } from '@chimera/core';
import { Rng, TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { VisionTransformer, tinyViT, visionModality, type PreparedImage, type RgbImage, type VisionModality } from '@chimera/vision-encoder';
import { compose, earlyFusion, nvlmHybrid, type ComposedModel, type ComposedSample, type NvlmHybridOptions } from '../src/index';
import { BOS, IMAGE_ID, exactlyEqual, openGates, tinyBackbone } from './helpers/toy';

const TAGS = [20, 21, 22, 23]; // <tile_1> .. <tile_4>
const TOKENS_PER_VIEW = 16; // tinyViT: 16x16 views, 4x4 patches

/** A width x height image of random pixels (tiny ViT tiles are 16x16: 32x32 is a 2x2 grid, 32x16 a 1x2 grid). */
function picture(seed: number, width = 32, height = 32): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(256 * rng.next());
  return { data, width, height };
}

function tilesPlugin(options: { maxTiles?: number; thumbnailWithSingleTile?: boolean; thumbnail?: 'first' | 'last' } = {}): VisionModality {
  return visionModality({ mode: 'tiles', encoder: new VisionTransformer(tinyViT()), layers: 'final', maxTiles: 4, ...options });
}

/** The same item with the pixels of its tile `tile` (a view other than the thumbnail) taken from `other`. */
function withTileFrom(item: PreparedImage, other: PreparedImage, tile: number): PreparedImage {
  const viewSize = item.height * item.width * 3;
  const view = tile >= item.thumbnailIndex! ? tile + 1 : tile;
  const pixels = item.pixels.slice();
  pixels.set(other.pixels.subarray(view * viewSize, (view + 1) * viewSize), view * viewSize);
  return { ...item, pixels };
}

/** A plugin that encodes every view (as the hybrid's) but gives only the thumbnail's rows: the reference's input. */
function thumbnailOnly(plugin: VisionModality): Modality<unknown, PreparedImage> {
  const input = plugin.continuousIn!;
  return {
    name: plugin.name,
    module: plugin.module,
    prepare: (raw) => plugin.prepare(raw as RgbImage),
    tokensFor: (item) => plugin.tokensFor(item) / item.views,
    continuousIn: {
      featureDim: input.featureDim,
      encode(items, options): EncodedFeatures {
        const { features } = input.encode(items, options);
        const list = Array.isArray(features) ? features : tf.unstack(features);
        const rows = items.map((item, i) => tf.slice(list[i]!, [item.thumbnailIndex! * TOKENS_PER_VIEW, 0], [TOKENS_PER_VIEW, -1]));
        return { features: rows, tokensPerItem: rows.map(() => TOKENS_PER_VIEW) };
      },
    },
  };
}

/**
 * An NVLM-H model and the thumbnail-only early-fusion model it must equal at init: same LLM, encoder and projector
 * weights (copied by name), so the only difference is the tile path.
 */
function hybridAndReference(options: NvlmHybridOptions = {}, thumbnail: 'first' | 'last' = 'last') {
  manualSeed(3);
  const image = tilesPlugin({ thumbnail });
  const model = compose({
    backbone: tinyBackbone(),
    modalities: { image },
    fusion: { image: nvlmHybrid({ layers: 'all', tileTags: TAGS, ...options }) },
  });
  const reference = compose({ backbone: tinyBackbone(), modalities: { image: thumbnailOnly(tilesPlugin({ thumbnail })) }, fusion: { image: earlyFusion() } });
  const own = new Map(reference.namedParameters());
  const notCopied: string[] = [];
  for (const [name, v] of model.namedParameters()) {
    const source = own.get(name);
    if (source) v.assign(source);
    else notCopied.push(name);
  }
  return { model, reference, image, notCopied };
}

/** The hybrid's samples and the reference's: the same text, each image as its thumbnail plus its tags as text. */
function pairedSamples(image: VisionModality, tags: boolean) {
  const a = image.prepare(picture(1)); // 2x2 tiles
  const b = image.prepare(picture(2, 32, 16)); // 1x2 tiles
  const tagText = (item: PreparedImage) => ({ text: tags ? TAGS.slice(0, item.views - 1) : [] });
  const hybrid: ComposedSample[] = [
    [{ text: [BOS, 5] }, { modality: 'image', item: a }, { text: [6, 7, 8] }, { modality: 'image', item: b }, { text: [9, 4] }],
    [{ text: [BOS, 4, 4, 3] }],
    [{ modality: 'image', item: b }, { text: [3, 2] }],
  ];
  const reference: ComposedSample[] = [
    [{ text: [BOS, 5] }, { modality: 'image', item: a }, tagText(a), { text: [6, 7, 8] }, { modality: 'image', item: b }, tagText(b), { text: [9, 4] }],
    [{ text: [BOS, 4, 4, 3] }],
    [{ modality: 'image', item: b }, tagText(b), { text: [3, 2] }],
  ].map((parts) => parts.filter((p) => !('text' in p) || (p.text?.length ?? 0) > 0) as ComposedSample);
  return { hybrid, reference, a, b };
}

describe.each(TEST_BACKENDS)('identity at init (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it.each([
    [true, 'last'],
    [false, 'last'],
    [true, 'first'],
  ] as const)('tile tags %s, thumbnail %s: the logits equal thumbnail-only early fusion bitwise, until a gate opens', (tags, thumbnail) => {
    const { model, reference, image, notCopied } = hybridAndReference(tags ? {} : { tileTags: false }, thumbnail);
    // The only parameters the reference lacks are the cross-attention blocks.
    expect(notCopied.length).toBeGreaterThan(0);
    expect(notCopied.every((n) => /^llm\.model\.inserted\.before_[01]_xattn_image\./.test(n))).toBe(true);
    const samples = pairedSamples(image, tags);
    const ours = model.forward(samples.hybrid);
    const theirs = reference.forward(samples.reference);
    expect(ours.logits.shape).toEqual(theirs.logits.shape);
    expect(exactlyEqual(ours.logits, theirs.logits)).toBe(true);
    // Tiles are invisible while the gates are 0: other tile pixels, same logits.
    const other = image.prepare(picture(7));
    const swapped = [[...(samples.hybrid[0] as object[]).slice(0, 1), { modality: 'image', item: withTileFrom(samples.a, other, 1) }, ...(samples.hybrid[0] as object[]).slice(2)]] as ComposedSample[];
    const first = model.forward(samples.hybrid.slice(0, 1));
    const swappedOut = model.forward(swapped);
    expect(exactlyEqual(first.logits, swappedOut.logits)).toBe(true);
    // (b) With the attention gates open the tiles reach the logits, and the checks above can fail.
    for (const [name, v] of model.namedParameters()) if (name.endsWith('attn_gate')) v.assign(tf.fill(v.shape, 0.7));
    const opened = model.forward(samples.hybrid);
    expect(exactlyEqual(opened.logits, theirs.logits)).toBe(false);
    const openFirst = model.forward(samples.hybrid.slice(0, 1));
    const openSwapped = model.forward(swapped);
    expect(exactlyEqual(openFirst.logits, openSwapped.logits)).toBe(false);
    // Text before the first image sees no tile (its cross-attention output is zeroed): rows 0..1 (BOS, 5) stay the
    // reference's exactly.
    const before = (out: { logits: tf.Tensor }) => tf.slice(out.logits, [0, 0, 0], [1, 2, -1]);
    const [x, y] = [before(opened), before(theirs)];
    expect(exactlyEqual(x, y)).toBe(true);
    tf.dispose([ours, theirs, first, swappedOut, opened, openFirst, openSwapped, x, y]);
    model.dispose();
    reference.dispose();
  });
});

describe('what each position sees (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  // One block after the last layer: a position's logits depend on the tiles only through its own cross-attention.
  function lastLayerModel(options: NvlmHybridOptions = {}) {
    manualSeed(5);
    const image = tilesPlugin();
    const model = compose({
      backbone: tinyBackbone(),
      modalities: { image },
      fusion: { image: nvlmHybrid({ layers: 1, position: 'after', tileTags: TAGS, ...options }) },
    });
    openGates(model);
    return { model, image };
  }

  function rows(model: ComposedModel, sample: ComposedSample): number[][] {
    const out = model.forward([sample]);
    const values = (out.logits.arraySync() as number[][][])[0]!;
    tf.dispose(out);
    return values;
  }
  const same = (a: number[], b: number[]) => a.every((v, i) => v === b[i]);

  it('a tile tag sees only its own tile; text after the tags sees every tile of the latest image', () => {
    const { model, image } = lastLayerModel();
    const a = image.prepare(picture(1));
    const b = image.prepare(picture(2, 32, 16));
    const other = image.prepare(picture(9));
    const sample = (first: PreparedImage): ComposedSample => [
      { text: [BOS, 5] },
      { modality: 'image', item: first },
      { text: [6] },
      { modality: 'image', item: b },
      { text: [7] },
    ];
    // Positions: 0 BOS, 1 '5', 2..17 thumbnail A, 18..21 <tile_1..4> of A, 22 '6', 23..38 thumbnail B, 39..40
    // <tile_1..2> of B, 41 '7'.
    const base = rows(model, sample(a));
    const changed = rows(model, sample(withTileFrom(a, other, 2))); // A's third tile
    const unchanged = [0, 1, ...Array.from({ length: 16 }, (_, i) => 2 + i), 18, 19, 21, 39, 40, 41];
    for (const t of unchanged) expect(same(base[t]!, changed[t]!), `position ${t}`).toBe(true);
    for (const t of [20, 22]) expect(same(base[t]!, changed[t]!), `position ${t}`).toBe(false);
    // The thumbnail of B sees A's tiles (the latest image that started before it), as Flamingo's 'latest' rule.
    expect(same(base[23]!, changed[23]!)).toBe(false);
    model.dispose();
  });

  it("mode 'all': text after the second image still sees the first image's tiles", () => {
    const { model, image } = lastLayerModel({ mode: 'all' });
    const a = image.prepare(picture(1));
    const b = image.prepare(picture(2, 32, 16));
    const other = image.prepare(picture(9));
    const sample = (first: PreparedImage): ComposedSample => [{ modality: 'image', item: first }, { modality: 'image', item: b }, { text: [7] }];
    const base = rows(model, sample(a));
    const changed = rows(model, sample(withTileFrom(a, other, 0)));
    const last = base.length - 1;
    expect(same(base[last]!, changed[last]!)).toBe(false);
    model.dispose();
  });
});

describe.each(TEST_BACKENDS)('generation with cached tiles (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it.each([true, false])('tile tags %s: cached greedy generation equals greedy decoding by full forwards, token for token', async (tags) => {
    manualSeed(11);
    const image = tilesPlugin();
    const model = compose({
      backbone: tinyBackbone(),
      modalities: { image },
      fusion: { image: nvlmHybrid({ layers: 'all', tileTags: tags ? TAGS : false }) },
    });
    openGates(model, 1.5);
    const a = image.prepare(picture(4));
    const b = image.prepare(picture(5, 32, 16));
    // Row 0 ends with an image: without tags only generated tokens see its tiles (the mask's extra row).
    const prompts: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'image', item: a }, { text: [6, 7] }, { modality: 'image', item: b }],
      [{ modality: 'image', item: b }, { text: [3] }],
    ];
    const steps = 5;
    const options = { maxNewTokens: steps, eosTokenId: null };
    const cached = await expectNoLeaks(() => model.generate(prompts, options), 'cached generation');
    const uncached = await model.generate(prompts, { ...options, useCache: false });
    expect(cached.tokens).toEqual(uncached.tokens);
    for (let row = 0; row < prompts.length; row++) {
      const greedy: number[] = [];
      for (let step = 0; step < steps; step++) {
        const sample = [...(prompts[row] as object[]), ...(greedy.length > 0 ? [{ text: [...greedy] }] : [])] as ComposedSample;
        const out = model.forward([sample]);
        const next = tf.tidy(() => tf.argMax(tf.slice(out.logits, [0, out.logits.shape[1]! - 1, 0], [1, 1, -1]), -1).dataSync()[0]!);
        tf.dispose(out);
        greedy.push(next);
      }
      expect(cached.tokens[row]).toEqual(greedy);
    }
    // The tiles matter to what is generated: with the gates closed again the answer differs.
    for (const [name, v] of model.namedParameters()) if (/_gate$/.test(name)) v.assign(tf.zerosLike(v));
    const closed = await model.generate(prompts, options);
    expect(closed.tokens).not.toEqual(cached.tokens);
    model.dispose();
  });
});

describe('errors, groups, gradients (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('an image over the tile budget fails before any tensor work, naming the item, the count, the budget and the fix', () => {
    const image = tilesPlugin();
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: nvlmHybrid({ layers: 'all', maxTiles: 2 }) }, placeholders: { image: IMAGE_ID } });
    const wide = image.prepare(picture(3, 64, 16)); // 1x4 tiles
    const fits = image.prepare(picture(3, 32, 16)); // 1x2 tiles
    const before = tf.memory().numTensors;
    expect(() => model.forward([[{ text: [BOS] }, { modality: 'image', item: fits }], [{ text: [BOS] }, { modality: 'image', item: wide }]])).toThrow(
      /sample 1, part 1: this 'image' image has 4 tiles, over nvlmHybrid's tile budget of 2 \(maxTiles\)\. Prepare images with at most 2 tiles .*maxTiles: 2.*or raise nvlmHybrid\(\{ maxTiles \}\)/,
    );
    expect(() => model.streamGenerate({ ids: [BOS, IMAGE_ID, 5], media: [{ modality: 'image', item: wide }] }, { maxNewTokens: 1 })).toThrow(
      /sample 0, media item 0: .*4 tiles/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('other bad input: no thumbnail, an item without views, too few tile tags, a tag outside the vocabulary', () => {
    const single = tilesPlugin(); // a one-tile grid gets no thumbnail unless thumbnailWithSingleTile is set
    const model = compose({ backbone: tinyBackbone(), modalities: { image: single }, fusion: { image: nvlmHybrid({ layers: 'all' }) } });
    expect(() => model.forward([[{ modality: 'image', item: single.prepare(picture(1, 16, 16)) }]])).toThrow(
      /sample 0, part 0: this 'image' image has no thumbnail .*thumbnailWithSingleTile: true/,
    );
    model.dispose();
    const vit = visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT()), layers: 'final' });
    const vitModel = compose({ backbone: tinyBackbone(), modalities: { image: vit }, fusion: { image: nvlmHybrid({ layers: 'all' }) } });
    expect(() => vitModel.forward([[{ modality: 'image', item: vit.prepare(picture(1, 16, 16)) }]])).toThrow(/no views \/ thumbnailIndex.*'tiles' mode/);
    vitModel.dispose();
    expect(() => nvlmHybrid({ tileTags: [20, 21], maxTiles: 4 })).toThrow(/maxTiles is 4 but tileTags gives only 2 tag id\(s\)/);
    expect(() => compose({ backbone: tinyBackbone(), modalities: { image: tilesPlugin() }, fusion: { image: nvlmHybrid({ layers: 'all', tileTags: [20, 99] }) } })).toThrow(
      /tile tag id 99 is outside the LLM's vocabulary \[0, 32\)/,
    );
  });

  it('parameter groups: the thumbnail projector is a connector, the blocks an extension; presets pick them', () => {
    const image = tilesPlugin();
    const resampler = { type: 'perceiver', numLatents: 4, depth: 1, heads: 2, headDim: 8, ffMult: 2 } as const;
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: nvlmHybrid({ layers: 'all', resampler }) } });
    expect(model.parameterGroups().map((g) => [g.name, g.kind])).toEqual([
      ['llm', 'backbone'],
      ['image.encoder', 'encoder'],
      ['image.projector', 'connector'],
      ['image.resampler', 'connector'],
      ['image.xattn', 'extension'],
    ]);
    const trainable = () => model.namedParameters().filter(([, v]) => v.trainable).map(([n]) => n);
    model.trainOnly('projector');
    expect(trainable().length).toBeGreaterThan(0);
    expect(trainable().every((n) => /^image\.(projector|resampler)\./.test(n))).toBe(true);
    expect(trainable().some((n) => n.startsWith('image.projector.'))).toBe(true);
    model.trainOnly('fusion');
    const fusion = trainable();
    expect(fusion.every((n) => /^image\.(projector|resampler)\./.test(n) || n.startsWith('llm.model.inserted.'))).toBe(true);
    expect(fusion.filter((n) => n.startsWith('llm.model.inserted.')).length).toBe(model.namedParameters().filter(([n]) => n.startsWith('llm.model.inserted.')).length);
    model.trainOnly(['image.xattn']);
    expect(trainable().every((n) => /^llm\.model\.inserted\.before_[01]_xattn_image\./.test(n))).toBe(true);
    model.dispose();
  });

  it('gradients reach both paths: the thumbnail projector, the tile resampler and blocks, and the shared encoder', () => {
    manualSeed(13);
    const image = tilesPlugin();
    const resampler = { type: 'perceiver', numLatents: 4, depth: 1, heads: 2, headDim: 8, ffMult: 2 } as const;
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: nvlmHybrid({ layers: 'all', resampler, tileTags: TAGS }) } });
    const batch: ComposedSample[] = [
      [{ text: [BOS, 5], trained: false }, { modality: 'image', item: image.prepare(picture(1)) }, { text: [6, 7] }],
      [{ modality: 'image', item: image.prepare(picture(2, 32, 16)) }, { text: [3, 2] }],
    ];
    const norms = (selected: [string, tf.Variable][]): Map<string, number> => {
      const { value, grads } = tf.variableGrads(() => model.loss(batch), selected.map(([, v]) => v));
      const result = new Map(selected.map(([n, v]) => [n, tf.tidy(() => tf.norm(grads[v.name]!).dataSync()[0]!)]));
      tf.dispose([value, ...Object.values(grads)]);
      return result;
    };
    const params = model.namedParameters();
    // At init the gates are 0: the gates themselves get a gradient (tanh'(0) = 1), the thumbnail path too.
    const atInit = norms(params.filter(([n]) => n.startsWith('image.projector.') || /_gate$/.test(n)));
    for (const [name, g] of atInit) expect(g, name).toBeGreaterThan(0);
    openGates(model, 0.5);
    const opened = expectNoLeaksSync(() => norms(params), 'loss and gradients');
    const some = (pattern: RegExp) => [...opened].filter(([n]) => pattern.test(n)).some(([, g]) => g > 0);
    expect(some(/^image\.projector\./)).toBe(true);
    expect(some(/^image\.resampler\./)).toBe(true);
    expect(some(/^llm\.model\.inserted\..*\.attn\.k_proj\./)).toBe(true);
    expect(some(/^image\.encoder\./)).toBe(true);
    expect(some(/^llm\.model\.layers\./)).toBe(true);
    model.dispose();
  });

  it('forward, loss and generation leak no tensors', async () => {
    const image = tilesPlugin();
    const model = compose({ backbone: tinyBackbone(), modalities: { image }, fusion: { image: nvlmHybrid({ layers: 'all', tileTags: TAGS }) } });
    openGates(model);
    const sample: ComposedSample = [{ text: [BOS] }, { modality: 'image', item: image.prepare(picture(6)) }, { text: [5] }];
    expectNoLeaksSync(() => tf.dispose(model.forward([sample, [{ text: [BOS, 4] }]])), 'forward');
    expectNoLeaksSync(() => tf.dispose(model.loss([sample])), 'loss');
    await expectNoLeaks(() => model.generate([sample, [{ text: [BOS, 4] }]], { maxNewTokens: 3, eosTokenId: null }), 'generation');
    model.dispose();
  });
});
