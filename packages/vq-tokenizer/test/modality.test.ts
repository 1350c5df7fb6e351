import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend, layoutSequences, requirePath } from '@chimera/core';
import { expectNoLeaksSync } from '@chimera/core/testing';
import { VQModel, vqImageModality, type RgbPixels } from '../src/index';

const SMALL = { channels: 8, channelMult: [1, 2, 2], numResBlocks: 1, zChannels: 16, codebookSize: 32, codebookDim: 4, normGroups: 4, attention: false };

function image(width: number, height: number, seed: number): RgbPixels {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (Math.imul(i + 1, 2654435761 + seed) >>> 24) & 255;
  return { data, width, height };
}

beforeAll(async () => {
  await initBackend();
});

describe('vqImageModality', () => {
  it('tokenizes items to row-major codes whose count is tokensFor, and detokenizes codes to images', () => {
    const model = new VQModel(SMALL);
    const image16 = vqImageModality(model, { imageSize: 16 });
    expect(requirePath(image16, 'discrete')).toBe(image16.discrete);
    expect(image16.discrete.latentGrid).toEqual([4, 4]);
    const items = [image(16, 16, 1), image(16, 16, 2)].map((raw) => image16.prepare(raw));
    expect(image16.tokensFor(items[0]!)).toBe(16);
    expect(image16.gridFor!(items[0]!)).toEqual({ rows: 4, cols: 4 });
    const ids = expectNoLeaksSync(() => image16.discrete.tokenize(items));
    expect(ids.shape).toEqual([2, 16]);
    const grid = tf.tidy(() => model.encode(tf.tensor4d(items[1]!.pixels, [1, 16, 16, 3])));
    expect(Array.from(ids.dataSync()).slice(16)).toEqual(Array.from(grid.dataSync()));
    const vectors = expectNoLeaksSync(() => image16.discrete.lookup(ids));
    expect(vectors.shape).toEqual([2, 16, 4]);
    const decoded = expectNoLeaksSync(() => image16.discrete.detokenize(ids));
    expect(decoded.map((d) => [d.width, d.height, d.data.length])).toEqual([[16, 16, 768], [16, 16, 768]]);
    // A wide item gets its own grid.
    const wide = image16.prepare(image(24, 16, 3));
    expect(image16.tokensFor(wide)).toBe(24);
    tf.dispose([ids, grid, vectors]);
    model.dispose();
  });

  it("lays its codes out in a sequence: own head targets (Janus) or unified text ids (Chameleon)", () => {
    const model = new VQModel(SMALL);
    const plugin = vqImageModality(model, { imageSize: 8 });
    const item = plugin.prepare(image(8, 8, 4));
    const ids = plugin.discrete.tokenize([item]);
    const codes = Array.from(ids.dataSync());
    ids.dispose();
    expect(codes).toHaveLength(plugin.tokensFor(item));
    const sample = [{ text: [1, 2], trained: false }, { modality: 'image', kind: 'codes' as const, codes }, { text: [3] }];
    const own = layoutSequences([sample], { modalities: ['image'], placeholderIds: { image: 9 } });
    expect(Array.from(own.targets.codes.image!.ids).slice(1, 5)).toEqual(codes);
    const unified = layoutSequences([sample], { modalities: ['image'], placeholderIds: { image: 9 }, unifiedVocab: { image: 100 } });
    expect(Array.from(unified.inputIds).slice(2, 6)).toEqual(codes.map((c) => 100 + c));
    model.dispose();
  });

  it('exposes the tokenizer under its role, and says what is wrong with bad input', () => {
    const model = new VQModel(SMALL);
    const plugin = vqImageModality(model, { imageSize: 16 });
    expect(plugin.module.namedParameters().some(([n]) => n === 'tokenizer.quantize.embedding.weight')).toBe(true);
    expect(() => plugin.prepare({ data: new Uint8Array(10), width: 16, height: 16 })).toThrow(/expected \{ data: Uint8Array of width \* height \* 3 RGB bytes, width, height \}, got \{ data: Uint8Array\(10\), width: 16, height: 16 \}/);
    expect(() => plugin.prepare(image(18, 16, 0))).toThrow(/not a multiple of the downsampling 4/);
    expect(() => plugin.discrete.tokenize([plugin.prepare(image(16, 16, 0)), plugin.prepare(image(8, 8, 0))])).toThrow(/items must share one size/);
    const ids = tf.zeros([1, 15], 'int32');
    expect(() => plugin.discrete.detokenize(ids)).toThrow(/ids must be \[items, 16\] \(a 4x4 grid for 16x16 images\), got \[1,15\]/);
    const bad = tf.fill([1, 16], 40, 'int32');
    expect(() => plugin.discrete.detokenize(bad)).toThrow(/code 40 .* outside the codebook \[0, 32\)/);
    expect(() => vqImageModality(model, { imageSize: 10 })).toThrow(/not a multiple of the downsampling 4/);
    tf.dispose([ids, bad]);
    model.dispose();
  });
});
