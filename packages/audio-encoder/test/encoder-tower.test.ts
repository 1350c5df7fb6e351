// The Whisper encoder on its own: shapes and the position table, taps by HF's hidden_states indexing, frame counts
// up to twice the table (and a clear error past it), padding + masking equal to encoding the short row alone,
// 2x pooling before the final LayerNorm, the window encoder, and no leaked tensors.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { manualSeed } from '@chimera/core';
import { WhisperEncoder } from '../src/encoder/encoder';
import { tinyWhisperEncoder, whisperBase, whisperSmall, whisperTiny, encoderPositions } from '../src/encoder/config';
import { whisperSinusoids } from '../src/encoder/positions';
import { WindowEncoder } from '../src/encoder/window-encoder';

function features(batch: number, frames: number, mels = 8, seed = 1): tf.Tensor3D {
  return tf.randomNormal([batch, frames, mels], 0, 1, 'float32', seed) as tf.Tensor3D;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('config and positions', () => {
  it('presets have HF whisper-{tiny,base,small} encoder shapes', () => {
    expect(whisperTiny()).toMatchObject({ dModel: 384, numLayers: 4, numHeads: 6, ffnDim: 1536, numMelBins: 80, maxSourcePositions: 1500 });
    expect(whisperBase()).toMatchObject({ dModel: 512, numLayers: 6, numHeads: 8, ffnDim: 2048 });
    expect(whisperSmall()).toMatchObject({ dModel: 768, numLayers: 12, numHeads: 12, ffnDim: 3072 });
    expect(() => tinyWhisperEncoder({ dModel: 15 })).toThrow(/dModel \(15\) must be divisible by numHeads/);
  });

  it('sinusoids follow Whisper: sin half then cos half, log(10000)/(C/2-1) increments', () => {
    const t = whisperSinusoids(5, 8);
    const inc = Math.log(10000) / 3;
    for (const [row, i] of [[3, 2], [4, 1]] as const) {
      expect(t[row * 8 + i]).toBeCloseTo(Math.sin(row * Math.exp(-inc * i)), 6);
      expect(t[row * 8 + 4 + i]).toBeCloseTo(Math.cos(row * Math.exp(-inc * i)), 6);
    }
  });

  it('conv2 maps T frames to ceil(T / 2) positions', () => {
    expect([1, 2, 3, 3000, 3001].map(encoderPositions)).toEqual([1, 1, 2, 1500, 1501]);
  });
});

describe.each(TEST_BACKENDS)('WhisperEncoder (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('shapes, taps (0 = embeddings, L = after layer_norm = output), parameter names, no leaks', async () => {
    manualSeed(1);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const names = Object.keys(encoder.stateDict());
    expect(names).toContain('embed_positions.weight');
    expect(names).toContain('layers.1.self_attn.q_proj.bias');
    expect(names).not.toContain('layers.0.self_attn.k_proj.bias');
    expect(names).toContain('layers.0.self_attn_layer_norm.weight');
    expect(encoder.trainableVariables().length).toBe(names.length - 1); // the positions are a buffer
    const x = features(2, 21);
    await expectNoLeaks(() => {
      const out = encoder.forward(x, { taps: [0, 1, -1] });
      expect(out.hidden.shape).toEqual([2, 11, 16]);
      expect(out.taps.map((t) => t.shape)).toEqual([[2, 11, 16], [2, 11, 16], [2, 11, 16]]);
      expect(maxAbsDiff(out.taps[2]!, out.hidden)).toBe(0);
      expect(maxAbsDiff(out.taps[0]!, out.taps[1]!)).toBeGreaterThan(1e-3);
      tf.dispose([out.hidden, ...out.taps]);
    });
    x.dispose();
    encoder.dispose();
  });

  it('takes any frame count up to twice the position table and says why past it', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder()); // 64 positions -> 128 frames
    const ok = features(1, 128);
    const out = encoder.forward(ok);
    expect(out.hidden.shape).toEqual([1, 64, 16]);
    const long = features(1, 129);
    expect(() => encoder.forward(long)).toThrow(/129 mel frames is more than this encoder takes: its 64 positions cover 128 frames.*windows/);
    const nchw = tf.zeros([1, 8, 20]) as tf.Tensor3D;
    expect(() => encoder.forward(nchw)).toThrow(/transpose them to \[batch, frames, mels\]/);
    expect(() => encoder.resolveTap(4)).toThrow(/out of range; this encoder has 2 layers/);
    tf.dispose([ok, long, nchw, out.hidden]);
    encoder.dispose();
  });

  it('a padded, masked row equals the same frames encoded alone (and unmasked padding would differ)', () => {
    manualSeed(2);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const full = features(2, 30, 8, 3);
    const short = tf.slice(full, [1, 0, 0], [1, 17, -1]) as tf.Tensor3D;
    const masked = encoder.forward(full, { lengths: [30, 17], taps: [1] });
    const alone = encoder.forward(short, { taps: [1] });
    expect(masked.validTapPositions).toEqual([15, 9]);
    const head = (t: tf.Tensor3D) => tf.slice(t, [1, 0, 0], [1, 9, -1]);
    expect(maxAbsDiff(head(masked.hidden), alone.hidden)).toBeLessThan(1e-5);
    expect(maxAbsDiff(head(masked.taps[0]!), alone.taps[0]!)).toBeLessThan(1e-5);
    const unmasked = encoder.forward(full);
    expect(maxAbsDiff(head(unmasked.hidden), alone.hidden)).toBeGreaterThan(1e-3);
    tf.dispose([full, short, masked.hidden, ...masked.taps, alone.hidden, ...alone.taps, unmasked.hidden]);
    encoder.dispose();
  });

  it('padding gets no gradient: the masked frames of a row do not reach its loss', () => {
    manualSeed(5);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const x = features(2, 24, 8, 6);
    const [grad] = tf.grads((input: tf.Tensor) => {
      const out = encoder.forward(input as tf.Tensor3D, { lengths: [24, 13] });
      return tf.sum(tf.mul(out.hidden, tf.randomNormal(out.hidden.shape, 0, 1, 'float32', 7)));
    })([x]);
    const padded = tf.slice(grad!, [1, 13, 0], [1, -1, -1]);
    const valid = tf.slice(grad!, [1, 0, 0], [1, 13, -1]);
    expect(tf.max(tf.abs(padded)).dataSync()[0]).toBe(0);
    expect(tf.max(tf.abs(valid)).dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([x, grad!, padded, valid]);
    encoder.dispose();
  });

  it('pool 2 averages pairs of positions before layer_norm (Audio Flamingo 3), dropping an odd last one', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const x = features(1, 22);
    const pooled = encoder.forward(x, { pool: 2, taps: [1] }); // tap 1: the input of the last (second) block
    expect(pooled.hidden.shape).toEqual([1, 5, 16]);
    expect(pooled.taps[0]!.shape).toEqual([1, 11, 16]); // taps are not pooled
    expect(pooled.validPositions).toEqual([5]);
    expect(encoder.outputLength(22, 2)).toBe(5);
    const manual = tf.tidy(() => {
      const last = tf.slice(encoder.layers[1]!.forward(pooled.taps[0]!), [0, 0, 0], [1, 10, -1]);
      const pairs = tf.mean(tf.reshape(last, [1, 5, 2, 16]), 2);
      return encoder.layer_norm.forward(pairs);
    });
    expect(maxAbsDiff(manual, pooled.hidden)).toBeLessThan(1e-5);
    manual.dispose();
    tf.dispose([x, pooled.hidden, ...pooled.taps]);
    encoder.dispose();
  });
});

describe.each(TEST_BACKENDS)('WindowEncoder (%s)', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('mixes tokens across windows, tells windows apart, and leaks nothing', async () => {
    manualSeed(4);
    const windows = new WindowEncoder({ dim: 16, layers: 1, heads: 2, maxWindows: 4 });
    const tokens = tf.randomNormal([6, 16], 0, 1, 'float32', 5) as tf.Tensor2D;
    await expectNoLeaks(() => {
      const a = windows.forward(tokens, [0, 0, 0, 1, 1, 1]);
      const b = windows.forward(tokens, [0, 0, 0, 2, 2, 2]);
      expect(a.shape).toEqual([6, 16]);
      expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-4);
      tf.dispose([a, b]);
    });
    expect(() => windows.forward(tokens, [0, 0, 0, 1, 1, 4])).toThrow(/window 4 has no embedding row \(maxWindows 4\)/);
    tokens.dispose();
    windows.dispose();
  });

  it('encodes clips of different lengths in one masked batch as it does one at a time', async () => {
    manualSeed(6);
    const windows = new WindowEncoder({ dim: 16, layers: 2, heads: 2, maxWindows: 4 });
    const clips = [
      { tokens: tf.randomNormal([5, 16], 0, 1, 'float32', 7) as tf.Tensor2D, windowOf: [0, 0, 1, 1, 2] },
      { tokens: tf.randomNormal([9, 16], 0, 1, 'float32', 8) as tf.Tensor2D, windowOf: [0, 0, 0, 1, 1, 1, 2, 2, 3] },
      { tokens: tf.randomNormal([2, 16], 0, 1, 'float32', 9) as tf.Tensor2D, windowOf: [0, 1] },
    ];
    await expectNoLeaks(() => {
      const batched = windows.forwardBatch(clips);
      clips.forEach((clip, i) => {
        const alone = windows.forward(clip.tokens, clip.windowOf);
        expect(batched[i]!.shape).toEqual([clip.windowOf.length, 16]);
        expect(maxAbsDiff(batched[i]!, alone)).toBeLessThan(1e-5);
        alone.dispose();
      });
      tf.dispose(batched);
    });
    expect(() => windows.forwardBatch([clips[0]!, { tokens: clips[1]!.tokens, windowOf: [0] }])).toThrow(/per token \(9\) \(clip 1\)/);
    tf.dispose(clips.map((c) => c.tokens));
    windows.dispose();
  });
});
