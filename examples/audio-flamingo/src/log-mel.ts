/**
 * Whisper's log-mel features (openai/whisper `audio.py`, HF WhisperFeatureExtractor): 16 kHz, n_fft 400, hop 160,
 * periodic Hann window, 200 samples of reflect padding each side, power spectrum with the last frame dropped, Slaney
 * mel filterbank (0-8000 Hz, Slaney area normalisation), log10(max(mel, 1e-10)), floored at max - 8, then
 * (x + 4) / 4. The DFT is a matmul against a precomputed basis (wasm has no FFT kernel). Unlike Whisper the clip
 * is not padded to 30 s: the encoder takes any length up to its positions.
 *
 * Stand-in for @chimera/audio-encoder's frontend (being written at the same time); the example switches to it
 * once it is published.
 */
import * as tf from '@tensorflow/tfjs';

const N_FFT = 400;
const HOP = 160;
const BINS = N_FFT / 2 + 1;

const hzToMel = (f: number) => (f < 1000 ? (3 * f) / 200 : 15 + (27 / Math.log(6.4)) * Math.log(f / 1000));
const melToHz = (m: number) => (m < 15 ? (200 * m) / 3 : 1000 * Math.exp(((m - 15) * Math.log(6.4)) / 27));

/** torchaudio.functional.melscale_fbanks(201, 0, 8000, melBins, 16000, norm='slaney', mel_scale='slaney'): [201, melBins]. */
function melFilterbank(melBins: number): Float32Array {
  const top = hzToMel(8000);
  const points = Array.from({ length: melBins + 2 }, (_, i) => melToHz((top * i) / (melBins + 1)));
  const out = new Float32Array(BINS * melBins);
  for (let k = 0; k < BINS; k++) {
    const f = (8000 * k) / (BINS - 1);
    for (let m = 0; m < melBins; m++) {
      const down = (f - points[m]!) / (points[m + 1]! - points[m]!);
      const up = (points[m + 2]! - f) / (points[m + 2]! - points[m + 1]!);
      out[k * melBins + m] = Math.max(0, Math.min(down, up)) * (2 / (points[m + 2]! - points[m]!));
    }
  }
  return out;
}

/** [400, 402]: windowed cos | -sin basis, so frames @ basis = [re | im] of every bin. */
function dftBasis(): Float32Array {
  const out = new Float32Array(N_FFT * 2 * BINS);
  for (let n = 0; n < N_FFT; n++) {
    const window = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT); // periodic Hann
    for (let k = 0; k < BINS; k++) {
      const angle = (2 * Math.PI * ((n * k) % N_FFT)) / N_FFT;
      out[n * 2 * BINS + k] = window * Math.cos(angle);
      out[n * 2 * BINS + BINS + k] = -window * Math.sin(angle);
    }
  }
  return out;
}

const constants = new Map<number, { basis: tf.Tensor2D; mel: tf.Tensor2D }>();

export interface LogMel {
  features: Float32Array;
  frames: number;
  melBins: number;
}

/** Log-mel features [frames, melBins] (frames = floor(samples / 160)) of 16 kHz PCM. */
export function whisperLogMel(pcm: Float32Array, melBins = 80): LogMel {
  return whisperLogMelBatch([pcm], melBins)[0]!;
}

/** Several clips at once: their frames go through one DFT matmul (the per-op cost dominates single clips). */
export function whisperLogMelBatch(pcms: readonly Float32Array[], melBins = 80): LogMel[] {
  let c = constants.get(melBins);
  if (!c) {
    c = tf.tidy(() => ({ basis: tf.keep(tf.tensor2d(dftBasis(), [N_FFT, 2 * BINS])), mel: tf.keep(tf.tensor2d(melFilterbank(melBins), [BINS, melBins])) }));
    constants.set(melBins, c);
  }
  const counts = pcms.map((pcm) => {
    if (pcm.length < N_FFT) throw new Error(`whisperLogMel: expected at least ${N_FFT} samples (25 ms at 16 kHz), got ${pcm.length}`);
    return Math.floor(pcm.length / HOP); // 1 + floor(len / hop) frames, the last dropped (Whisper)
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const framed = new Float32Array(total * N_FFT);
  let row = 0;
  pcms.forEach((pcm, k) => {
    const pad = N_FFT / 2;
    const padded = new Float32Array(pcm.length + N_FFT); // reflect padding (centre framing)
    for (let i = 0; i < padded.length; i++) {
      let j = i - pad;
      if (j < 0) j = -j;
      if (j >= pcm.length) j = 2 * (pcm.length - 1) - j;
      padded[i] = pcm[j]!;
    }
    for (let t = 0; t < counts[k]!; t++) framed.set(padded.subarray(t * HOP, t * HOP + N_FFT), (row + t) * N_FFT);
    row += counts[k]!;
  });
  const { basis, mel } = c;
  const logMel = tf.tidy(() => {
    const spectrum = tf.matMul(tf.tensor2d(framed, [total, N_FFT]), basis); // [T, 402]
    const [re, im] = tf.split(spectrum, 2, 1);
    const power = tf.add(tf.square(re!), tf.square(im!));
    return tf.div(tf.log(tf.maximum(tf.matMul(power, mel), 1e-10)), Math.log(10)).dataSync() as Float32Array;
  });
  row = 0;
  return counts.map((frames) => {
    const features = logMel.slice(row * melBins, (row + frames) * melBins);
    row += frames;
    let max = -Infinity;
    for (let i = 0; i < features.length; i++) max = Math.max(max, features[i]!);
    for (let i = 0; i < features.length; i++) features[i] = (Math.max(features[i]!, max - 8) + 4) / 4; // per clip, as Whisper
    return { features, frames, melBins };
  });
}
