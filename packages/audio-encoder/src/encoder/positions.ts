/**
 * Whisper's fixed sinusoidal positions (openai/whisper `model.py` `sinusoids`, which HF's WhisperEncoder copies
 * into `embed_positions.weight`): for channels C, inv_timescale_i = exp(-i * log(10000) / (C/2 - 1)) for
 * i < C/2, and row t is [sin(t * inv) | cos(t * inv)] (all sines, then all cosines; not interleaved).
 */
import * as tf from '@tensorflow/tfjs';

/** The [length, channels] table, computed in float64 and rounded once to float32 (PyTorch computes in float32). */
export function whisperSinusoids(length: number, channels: number, maxTimescale = 10000): Float32Array {
  if (!Number.isInteger(length) || length < 1 || !Number.isInteger(channels) || channels < 4 || channels % 2 !== 0) {
    throw new Error(`whisperSinusoids: expected a positive length and an even channel count >= 4, got ${length} x ${channels}`);
  }
  const half = channels / 2;
  const increment = Math.log(maxTimescale) / (half - 1);
  // PyTorch's reference computes the timescales and products in float32; fround at the same steps keeps the
  // table within float32 rounding of it at t up to 1500 (sin of a large argument amplifies any difference).
  const step = Math.fround(-increment);
  const inv = Array.from({ length: half }, (_, i) => Math.fround(Math.exp(Math.fround(step * i))));
  const table = new Float32Array(length * channels);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(t * inv[i]!);
      table[t * channels + i] = Math.sin(angle);
      table[t * channels + half + i] = Math.cos(angle);
    }
  }
  return table;
}

/** The table as a [length, channels] tensor. */
export function whisperSinusoidTensor(length: number, channels: number): tf.Tensor2D {
  return tf.tensor2d(whisperSinusoids(length, channels), [length, channels]);
}
