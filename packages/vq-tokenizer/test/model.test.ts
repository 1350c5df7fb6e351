import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@chimera/core';
import { expectNoLeaksSync } from '@chimera/core/testing';
import { SHAPES_VQ_CONFIG, VQ16_CONFIG, VQModel, resolveVQConfig } from '../src/index';

const SMALL = { channels: 8, channelMult: [1, 2, 2], numResBlocks: 1, zChannels: 16, codebookSize: 32, codebookDim: 4, normGroups: 4 };

beforeAll(async () => {
  await initBackend();
});

describe('VQModel', () => {
  it("names every tensor after LlamaGen's / Janus's VQ checkpoint keys", () => {
    const model = new VQModel({ ...SMALL, numResBlocks: 2 });
    const names = Object.keys(model.stateDict());
    for (const key of [
      'encoder.conv_in.weight',
      'encoder.conv_blocks.0.res.0.norm1.weight',
      'encoder.conv_blocks.1.res.0.nin_shortcut.weight',
      'encoder.conv_blocks.0.downsample.conv.weight',
      'encoder.conv_blocks.2.attn.1.proj_out.bias',
      'encoder.mid.1.q.weight',
      'encoder.mid.2.conv2.bias',
      'encoder.norm_out.weight',
      'encoder.conv_out.weight',
      'quant_conv.weight',
      'quantize.embedding.weight',
      'post_quant_conv.weight',
      'decoder.conv_in.weight',
      'decoder.mid.0.norm1.bias',
      'decoder.conv_blocks.0.res.2.conv1.weight',
      'decoder.conv_blocks.0.attn.2.k.weight',
      'decoder.conv_blocks.1.upsample.conv.weight',
      'decoder.conv_blocks.2.res.0.nin_shortcut.weight',
      'decoder.conv_out.bias',
    ]) {
      expect(names, key).toContain(key);
    }
    expect(names.some((n) => n.startsWith('encoder.conv_blocks.2.downsample'))).toBe(false);
    expect(names.some((n) => n.startsWith('decoder.conv_blocks.2.upsample'))).toBe(false);
    model.dispose();
  });

  it("has Janus VQ-16's sizes (16x downsampling, 16384 codes of width 8)", () => {
    const c = resolveVQConfig(VQ16_CONFIG);
    expect([c.codebookSize, c.codebookDim, c.channels, c.zChannels]).toEqual([16384, 8, 128, 256]);
    expect(2 ** (c.channelMult.length - 1)).toBe(16);
    const shapes = new VQModel(SHAPES_VQ_CONFIG);
    expect(shapes.gridFor(32, 32)).toEqual([8, 8]);
    shapes.dispose();
  });

  it('encodes to a grid from the image size, looks codes up, decodes to images, and leaks nothing', () => {
    const model = new VQModel(SMALL);
    const images = tf.randomUniform([2, 16, 24, 3], -1, 1);
    const codes = expectNoLeaksSync(() => model.encode(images));
    expect(codes.shape).toEqual([2, 4, 6]);
    expect(codes.dtype).toBe('int32');
    const latents = expectNoLeaksSync(() => model.lookup(codes));
    expect(latents.shape).toEqual([2, 4, 6, 4]);
    const decoded = expectNoLeaksSync(() => model.decode(codes));
    expect(decoded.shape).toEqual([2, 16, 24, 3]);
    // decode(encode(x)) is the reconstruction of the training pass (same codes, same decoder).
    const pass = model.forward(images, { record: false });
    expect(Array.from(pass.codes.dataSync())).toEqual(Array.from(codes.dataSync()));
    const diff = tf.max(tf.abs(tf.sub(pass.reconstruction, decoded))).dataSync()[0]!;
    expect(diff).toBeLessThan(1e-5);
    tf.dispose([images, codes, latents, decoded, pass.reconstruction, pass.codes, pass.latents, pass.losses.codebook, pass.losses.commitment, pass.losses.entropy]);
    model.dispose();
  });

  it('passes the reconstruction gradient straight through the codebook to the encoder, and leaks nothing', () => {
    const model = new VQModel(SMALL);
    const images = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 7);
    const params = new Map(model.namedParameters());
    const reached = ['encoder.conv_in.weight', 'quant_conv.weight', 'decoder.conv_out.weight'];
    const variables = [...reached, 'quantize.embedding.weight'].map((n) => params.get(n)!);
    // The reconstruction loss alone: the commitment loss would reach the encoder even without the estimator.
    const { value, grads } = expectNoLeaksSync(() =>
      tf.variableGrads(() => {
        const out = model.forward(images, { record: false });
        tf.dispose([out.codes, out.latents, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
        return tf.mean(tf.square(tf.sub(out.reconstruction, images))) as tf.Scalar;
      }, variables),
    );
    expect(value.dataSync()[0]).toBeGreaterThan(0);
    for (const [i, n] of reached.entries()) {
      expect(tf.norm(grads[variables[i]!.name]!).dataSync()[0]!, n).toBeGreaterThan(0);
    }
    // Codes move only by the codebook loss (or EMA): none of the reconstruction gradient reaches them.
    const codeGrad = grads[variables[3]!.name];
    expect(codeGrad === undefined ? 0 : tf.norm(codeGrad).dataSync()[0]!).toBe(0);
    tf.dispose([images, value, ...Object.values(grads)]);
    model.dispose();
  });

  it('says what is wrong with bad input', () => {
    const model = new VQModel(SMALL);
    const odd = tf.zeros([1, 30, 32, 3]);
    expect(() => model.encode(odd)).toThrow(/image 32x30 \(width x height\) is not a multiple of the downsampling 4 .*e\.g\. 32 x 28 or 32/);
    const gray = tf.zeros([1, 16, 16, 1]);
    expect(() => model.encode(gray)).toThrow(/images must be \[batch, height, width, 3\] \(NHWC, values in \[-1, 1\]\), got \[1,16,16,1\]/);
    const codes = tf.tensor3d([[[0, 31], [32, 1]]], [1, 2, 2], 'int32');
    expect(() => model.decode(codes)).toThrow(/code 32 at flat position 2 .* outside the codebook \[0, 32\)/);
    const flat = tf.tensor2d([[0, 1, 2, 3]], [1, 4], 'int32');
    expect(() => model.decode(flat)).toThrow(/codes must be a grid \[batch, rows, cols\], got \[1,4\]/);
    expect(() => new VQModel({ ...SMALL, normGroups: 3 })).toThrow(/normGroups 3 must divide every block width/);
    tf.dispose([odd, gray, codes, flat]);
    model.dispose();
  });
});
