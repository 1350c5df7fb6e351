// The audio modality plugin on its own: the core contract (validateModality, continuousIn only), tokensFor equal to
// what encode returns for whole clips and windowed ones, with and without pooling; a batch of clips of different
// lengths equal to each clip encoded alone; windowed features equal to the encoder run on each window's frames;
// taps; the window encoder role; PCM through a frontend; clear errors for bad input; no leaked tensors.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { manualSeed, validateModality } from '@chimera/core';
import { Rng, TEST_BACKENDS, expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { audioModality, type LogMelInput } from '../src/modality';
import { WhisperEncoder } from '../src/encoder/encoder';
import { tinyWhisperEncoder } from '../src/encoder/config';

const MELS = 8;

function clip(frames: number, seed = 1): LogMelInput {
  const rng = new Rng(seed);
  const features = Float32Array.from({ length: frames * MELS }, () => 2 * rng.next() - 1);
  return { features, frames, melBins: MELS };
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** The encoder's output rows for these frames encoded alone (no padding, no mask). */
function alone(encoder: WhisperEncoder, input: LogMelInput, start: number, length: number, pool = 1): tf.Tensor2D {
  return tf.tidy(() => {
    const x = tf.tensor3d(input.features.subarray(start * MELS, (start + length) * MELS), [1, length, MELS]);
    const out = encoder.forward(x, { pool });
    return tf.squeeze(out.hidden, [0]) as tf.Tensor2D;
  });
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('whole clips: tokens = floor(ceil(frames / 2) / pool), a mixed-length batch equals each clip alone, no leaks', async () => {
    manualSeed(1);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    for (const pool of [1, 2]) {
      const audio = validateModality(audioModality({ encoder, pool }));
      expect(audio.continuousIn.featureDim).toBe(16);
      const inputs = [clip(40, 1), clip(23, 2), clip(7, 3)];
      const items = audio.prepareAll(inputs);
      const expected = [20, 12, 4].map((n) => Math.floor(n / pool));
      expect(items.map((item) => audio.tokensFor(item))).toEqual(expected);
      expect(audio.gridFor!(items[1]!)).toEqual({ frames: expected[1], rows: 1, cols: 1 });
      await expectNoLeaks(() => {
        const out = audio.continuousIn.encode(items);
        const features = out.features as tf.Tensor2D[];
        expect(out.tokensPerItem).toEqual(expected);
        expect(features.map((f) => f.shape)).toEqual(expected.map((n) => [n, 16]));
        inputs.forEach((input, i) => {
          const reference = alone(encoder, input, 0, input.frames, pool);
          expect(maxAbsDiff(features[i]!, reference)).toBeLessThan(1e-5);
          reference.dispose();
        });
        tf.dispose(features);
      });
    }
    encoder.dispose();
  });

  it('windows: per-window tokens concatenated, each window equal to its frames encoded alone (last one padded and masked)', async () => {
    manualSeed(2);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const windows = { window: 20, hop: 12, maxWindows: 4 };
    const audio = audioModality({ encoder, windows, pool: 2 });
    const input = clip(47, 4); // windows at 0, 12, 24, 36; the last holds 11 frames
    const item = audio.prepare(input);
    expect(item.windows!.starts).toEqual([0, 12, 24, 36]);
    expect(item.windows!.lengths).toEqual([20, 20, 20, 11]);
    expect(audio.tokensFor(item)).toBe(5 + 5 + 5 + 3);
    expect(audio.tokensForFrames(47)).toBe(18);
    await expectNoLeaks(() => {
      const both = audio.continuousIn.encode([item, audio.prepare(clip(9, 5))]).features as tf.Tensor2D[];
      const features = both[0];
      expect(both[1]!.shape).toEqual([2, 16]); // 9 frames: ceil(9 / 2) = 5 positions, pooled to 2
      expect(features!.shape).toEqual([18, 16]);
      const parts = item.windows!.starts.map((s, w) => alone(encoder, input, s, item.windows!.lengths[w]!, 2));
      const reference = tf.concat(parts, 0);
      expect(maxAbsDiff(features!, reference)).toBeLessThan(1e-5);
      tf.dispose([...both, reference, ...parts]);
    });
    encoder.dispose();
  });

  it('layers and taps: several layers concatenate along features; taps come back in the same layout', () => {
    manualSeed(3);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const audio = audioModality({ encoder, layers: [1, -1], pool: 2, windows: { window: 16, hop: 8, maxWindows: 3 } });
    expect(audio.featureDim).toBe(32);
    const items = audio.prepareAll([clip(30, 6)]);
    const out = audio.continuousIn.encode(items, { taps: [0] });
    const [features] = out.features as tf.Tensor2D[];
    const tokens = audio.tokensFor(items[0]!);
    expect(features!.shape).toEqual([tokens, 32]);
    const [tap] = out.taps![0] as tf.Tensor2D[];
    expect(tap!.shape).toEqual([tokens, 16]);
    tf.dispose([features!, tap!]);
    expect(() => audio.continuousIn.encode(items, { taps: [3] })).toThrow(/tap 3 is out of range/);
    encoder.dispose();
  });

  it('a window encoder is the `window_encoder` role and mixes windows; no leaks', async () => {
    manualSeed(4);
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const audio = audioModality({ encoder, windows: { window: 16, hop: 8, maxWindows: 4 }, windowEncoder: { layers: 1, heads: 2 } });
    const roles = audio.module.children().map(([name]) => name);
    expect(roles).toEqual(['encoder', 'window_encoder']);
    expect(audio.module.namedParameters().some(([n]) => n.startsWith('window_encoder.window_embed'))).toBe(true);
    const item = audio.prepare(clip(30, 7));
    await expectNoLeaks(() => {
      const [features] = audio.continuousIn.encode([item]).features as tf.Tensor2D[];
      expect(features!.shape).toEqual([audio.tokensFor(item), 16]);
      tf.dispose(features!);
    });
    encoder.dispose();
  });

  it('PCM goes through a given frontend', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    const seen: number[] = [];
    const frontend = (pcm: Float32Array, sampleRate: number, melBins: number): LogMelInput => {
      seen.push(sampleRate, melBins);
      return clip(Math.floor(pcm.length / 160), 9);
    };
    const audio = audioModality({ encoder, frontend });
    const item = audio.prepare({ pcm: new Float32Array(1600), sampleRate: 16000 });
    expect(seen).toEqual([16000, MELS]);
    expect(item.frames).toBe(10);
    expect(item.seconds).toBeCloseTo(0.1);
    encoder.dispose();
  });
});

/** A mono 16-bit PCM WAV file. */
function wav(samples: Float32Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + 2 * samples.length);
  const view = new DataView(bytes.buffer);
  const text = (offset: number, s: string) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + 2 * samples.length, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, 'data');
  view.setUint32(40, 2 * samples.length, true);
  samples.forEach((v, i) => view.setInt16(44 + 2 * i, Math.round(v * 32767), true));
  return bytes;
}

describe('raw audio through the package frontend (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('WAV bytes, PCM at another rate and an AudioClip all become Whisper log-mel frames (100 per second)', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder({ numMelBins: 80 }));
    const audio = audioModality({ encoder });
    const tone = Float32Array.from({ length: 8000 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 16000)); // 0.5 s
    const fromPcm = audio.prepare({ pcm: tone, sampleRate: 16000 });
    expect(fromPcm.frames).toBe(50);
    expect(fromPcm.melBins).toBe(80);
    const fromWav = audio.prepare(wav(tone, 16000));
    expect(fromWav.frames).toBe(50);
    // 16-bit quantisation only: the same features to within a small tolerance.
    const gap = fromPcm.features.reduce((m, v, i) => Math.max(m, Math.abs(v - fromWav.features[i]!)), 0);
    expect(gap).toBeLessThan(1e-2);
    const at8k = Float32Array.from({ length: 4000 }, (_, i) => tone[2 * i]!);
    expect(audio.prepare({ samples: at8k, sampleRate: 8000 }).frames).toBe(50);
    expect(audio.tokensFor(fromWav)).toBe(25);
    const bad = tone.slice();
    bad[100] = Number.NaN;
    expect(() => audio.prepare({ pcm: bad, sampleRate: 16000 })).toThrow(/NaN/);
    expect(() => audio.prepare(wav(tone, 16000).subarray(0, 30))).toThrow();
    encoder.dispose();
  });
});

describe('tokensFor agrees with encode (wasm, property)', () => {
  beforeAll(() => setupTestBackend('wasm'));

  it('over random clip lengths, windows and pooling, every item gets exactly tokensFor rows', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder());
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 6, max: 128 }), { minLength: 1, maxLength: 3 }),
        fc.option(fc.record({ window: fc.integer({ min: 6, max: 40 }), hop: fc.integer({ min: 1, max: 40 }) }), { nil: undefined }),
        fc.integer({ min: 1, max: 3 }),
        (lengths, win, pool) => {
          const windows = win ? { window: win.window, hop: Math.min(win.hop, win.window), maxWindows: 200 } : undefined;
          const audio = audioModality({ encoder, pool, ...(windows ? { windows } : {}) });
          const items = lengths.map((n, i) => audio.prepare(clip(n, i + 1)));
          const before = tf.memory().numTensors;
          const out = audio.continuousIn.encode(items);
          const rows = (out.features as tf.Tensor[]).map((f) => f.shape[0]);
          tf.dispose(out.features as tf.Tensor[]);
          expect(tf.memory().numTensors).toBe(before);
          expect(rows).toEqual(items.map((item) => audio.tokensFor(item)));
          expect(out.tokensPerItem).toEqual(rows);
          expect(items.map((item) => audio.tokensForFrames(item.frames))).toEqual(rows);
        },
      ),
      { numRuns: 40 },
    );
    encoder.dispose();
  });
});

describe('bad input is a clear error (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('names what was expected, what was given and what to do', () => {
    const encoder = new WhisperEncoder(tinyWhisperEncoder()); // 64 positions: 128 frames
    const audio = audioModality({ encoder });
    expect(() => audio.prepare(clip(129))).toThrow(/129 mel frames \(1.29 s\).*take at most 128 \(1.28 s\); trim it or pass windows/);
    const nan = clip(10);
    nan.features[13] = Number.NaN;
    expect(() => audio.prepare(nan)).toThrow(/log-mel value 13 \(frame 1\) is NaN/);
    expect(() => audio.prepare({ features: new Float32Array(0), frames: 0, melBins: MELS })).toThrow(/at least one mel frame, got 0/);
    expect(() => audio.prepare({ ...clip(10), melBins: 80 })).toThrow(/80 mel bins but the encoder takes 8/);
    expect(() => audio.prepare({ features: new Float32Array(10), frames: 10, melBins: MELS })).toThrow(/need 80 values, got 10/);
    expect(() => audio.prepare('missing.wav')).toThrow(/missing.wav: could not read the file/);
    expect(() => audio.prepare(42 as never)).toThrow(/expected log-mel features \{ features, frames, melBins \}, PCM/);
    expect(() => audioModality({ encoder, pool: 2 }).prepare(clip(2))).toThrow(/gives no tokens with pool 2; give at least 3 frames/);
    const windowed = audioModality({ encoder, windows: { window: 20, hop: 10, maxWindows: 2 } });
    expect(() => windowed.prepare(clip(31))).toThrow(/needs 3 windows, more than maxWindows 2/);
    expect(() => audioModality({ encoder, windows: { window: 200, hop: 10, maxWindows: 2 } })).toThrow(/windows of 200 frames are longer than the encoder takes \(128/);
    expect(() => audio.continuousIn.encode([windowed.prepare(clip(12))])).toThrow(/other window settings/);
    expect(() => audioModality({ encoder, windows: { window: 20, hop: 10, maxWindows: 4 }, windowEncoder: { maxWindows: 2 } })).toThrow(
      /embeddings for 2 windows but the windows allow up to 4/,
    );
    expect(() => audio.tokensFor(audio.prepare(clip(4)), 'discrete')).toThrow(/only has the continuousIn path/);
    encoder.dispose();
  });
});
