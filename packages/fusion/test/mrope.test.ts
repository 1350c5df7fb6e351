// M-RoPE through compose (Qwen2-VL, Wang et al. 2024): an M-RoPE backbone needs the packer's 3-D positions and a
// 1-D backbone cannot take them (clear errors at compose); with them, a native-resolution image's tokens get
// (t, h, w) ids from its grid, the backbone sees those ids, and cached generation continues them exactly as
// step-by-step forwards do.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import type { CausalLMInputs } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality, type RgbImage } from '@chimera/vision-encoder';
import { compose, earlyFusion, type ComposedSample } from '../src/index';
import { BOS, IMAGE_ID, testImage, tinyBackbone, tinyImageModality } from './helpers/toy';

/** tinyBackbone's head dim is 8: 4 rotating pairs, 2 for the temporal axis, 1 each for height and width. */
const SECTIONS = [2, 1, 1];

function nativeImage() {
  return visionModality({ mode: 'native', encoder: new VisionTransformer(tinyViT({ positions: 'rope2d', clsToken: false })), layers: 'final', minPixels: 64, maxPixels: 64 * 64 });
}

/** A w x h noise image. */
function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101) % 256;
  return { data, width, height };
}

describe('M-RoPE and the packer (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('an M-RoPE backbone without 3-D positions, or 3-D positions for a 1-D backbone, fail at compose', () => {
    const image = () => tinyImageModality();
    const mrope = () => tinyBackbone({ mropeSections: SECTIONS });
    const base = { fusion: { image: earlyFusion() }, placeholders: { image: IMAGE_ID } };
    expect(() => compose({ ...base, backbone: mrope(), modalities: { image: image() } })).toThrow(
      /backbone uses M-RoPE \(mropeSections \[2, 1, 1\].*1-D 'sequential' positions \(the default\).*pack: \{ positions: 'mrope' \}/,
    );
    expect(() => compose({ ...base, backbone: mrope(), modalities: { image: image() }, pack: { positions: 'shared' } })).toThrow(
      /1-D 'shared' positions, so media tokens would lose their grid/,
    );
    expect(() => compose({ ...base, backbone: tinyBackbone(), modalities: { image: image() }, pack: { positions: 'mrope' } })).toThrow(
      /pack positions 'mrope' makes 3-D .* the backbone has 1-D RoPE \(no mropeSections\)/,
    );
    expect(() => compose({ ...base, backbone: tinyBackbone({ mropeSections: [2, 2] }), modalities: { image: image() }, pack: { positions: 'mrope' } })).toThrow(
      /3 axes .* mropeSections \[2, 2\] has 2/,
    );
  });

  it('image tokens get (t, h, w) ids from the grid, the backbone receives them, and text continues after the grid', () => {
    const image = nativeImage();
    const model = compose({ backbone: tinyBackbone({ mropeSections: SECTIONS }), modalities: { image }, fusion: { image: earlyFusion() }, placeholders: { image: IMAGE_ID }, pack: { positions: 'mrope' } });
    // 24x16 (w x h) with 4-pixel patches merged 2x2: a 2x3 token grid.
    const item = image.prepare(noise(24, 16, 1));
    expect(image.gridFor!(item)).toEqual({ rows: 2, cols: 3 });
    const sample: ComposedSample = [{ text: [BOS] }, { modality: 'image', item }, { text: [5, 6] }];
    let seen: number[][][] | null = null;
    const decoder = model.llm.model;
    const forward = decoder.forward.bind(decoder);
    decoder.forward = (inputs: CausalLMInputs, options) => {
      seen = inputs.positions!.arraySync() as number[][][];
      return forward(inputs, options);
    };
    tf.dispose(model.forward([sample]));
    // <bos> at 0; the grid from 1: t = 1, h = 1 + row, w = 1 + col; text after at 1 + max(1, 2, 3) = 4.
    expect(seen).toEqual([
      [[0, 1, 1, 1, 1, 1, 1, 4, 5]],
      [[0, 1, 1, 1, 2, 2, 2, 4, 5]],
      [[0, 1, 2, 3, 1, 2, 3, 4, 5]],
    ]);
    model.dispose();
  });

  it('cached generation with an image continues the 3-D positions as step-by-step forwards do, without leaks', async () => {
    const image = nativeImage();
    const model = compose({ backbone: tinyBackbone({ mropeSections: SECTIONS }), modalities: { image }, fusion: { image: earlyFusion() }, placeholders: { image: IMAGE_ID }, pack: { positions: 'mrope' } });
    // Two sizes in one batch (rows of different lengths, left-padded) and one text-only prompt.
    const prompts: ComposedSample[] = [
      [{ text: [BOS] }, { modality: 'image', item: image.prepare(noise(24, 16, 2)) }, { text: [7] }],
      [{ text: [BOS] }, { modality: 'image', item: image.prepare(noise(16, 32, 3)) }, { text: [8, 9] }],
      [{ text: [BOS, 5, 6] }],
    ];
    const steps: number[][][] = [];
    const recorder = { process: (logits: tf.Tensor2D) => (steps.push(logits.arraySync()), logits) };
    const options = { maxNewTokens: 3, eosTokenId: null };
    const cached = await expectNoLeaks(() => model.generate(prompts, { ...options, logitsProcessors: [recorder] }), 'cached generation');
    prompts.forEach((prompt, row) => {
      for (let step = 0; step < options.maxNewTokens; step++) {
        const sample = [...(prompt as object[]), ...(step > 0 ? [{ text: cached.tokens[row]!.slice(0, step) }] : [])] as ComposedSample;
        const out = model.forward([sample]);
        const last = tf.tidy(() => Array.from(tf.slice(out.logits, [0, out.logits.shape[1]! - 1, 0], [1, 1, -1]).dataSync()));
        tf.dispose(out);
        const gap = Math.max(...last.map((v, i) => Math.abs(v - steps[step]![row]![i]!)));
        expect(gap, `row ${row}, step ${step}`).toBeLessThan(1e-4);
      }
    });
    model.dispose();
  });

  it('the grid matters: the same image tokens under 1-D ids give other logits', () => {
    // Guards the test above against positions that are silently ignored.
    const image = nativeImage();
    const model = compose({ backbone: tinyBackbone({ mropeSections: SECTIONS }), modalities: { image }, fusion: { image: earlyFusion() }, placeholders: { image: IMAGE_ID }, pack: { positions: 'mrope' } });
    const sample: ComposedSample = [{ text: [BOS] }, { modality: 'image', item: image.prepare(testImage(4)) }, { text: [5] }];
    const decoder = model.llm.model;
    const forward = decoder.forward.bind(decoder);
    const outputs: number[][] = [];
    for (const flat of [false, true]) {
      decoder.forward = (inputs: CausalLMInputs, options) => {
        if (!flat) return forward(inputs, options);
        const [, batch, length] = inputs.positions!.shape as [number, number, number];
        return tf.tidy(() => forward({ ...inputs, positions: tf.tile(tf.expandDims(tf.range(0, length, 1, 'int32'), 0), [batch, 1]) }, options));
      };
      const out = model.forward([sample]);
      outputs.push(Array.from(tf.tidy(() => tf.slice(out.logits, [0, out.logits.shape[1]! - 1, 0], [1, 1, -1]).dataSync())));
      tf.dispose(out);
    }
    expect(Math.max(...outputs[0]!.map((v, i) => Math.abs(v - outputs[1]![i]!)))).toBeGreaterThan(1e-4);
    model.dispose();
  });
});
