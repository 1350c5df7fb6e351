/**
 * Whisper's log-mel frontend (openai/whisper `whisper/audio.py`, HF `WhisperFeatureExtractor`): 16 kHz mono;
 * zero-padded or trimmed to 30 s (480,000 samples) by default; reflect-padded by n_fft / 2 = 200 samples on each
 * side (torch.stft's `center=True`); periodic Hann window of 400; hop 160; power spectrum |X|^2 with the last
 * frame dropped (30 s -> 3000 frames); Slaney mel filterbank 0-8000 Hz with Slaney area normalisation (80 or 128
 * bins); log10(max(mel, 1e-10)), floored at the clip's maximum - 8, then (x + 4) / 4.
 *
 * On this engine: wasm has no FFT and 400 is not a power of two, so the STFT is a matMul against a precomputed
 * windowed DFT basis. The frame is folded first (the one step of a real FFT worth keeping here): the Hann window
 * is symmetric (w[n] = w[N - n]) and cos/sin are even/odd about N/2, so with e[n] = x[n] + x[N - n] and
 * o[n] = x[n] - x[N - n], re = e @ C ([N/2 + 1, N/2 + 1]) and im = o @ S ([N/2 - 1, N/2 + 1]): half the
 * multiply-adds of frames @ [cos | sin], and sums half as long (float32 rounding). Frames are cut and folded
 * in JS, copies from the reflect-padded signal (wasm's strided slices cost ~8x the matMul).
 */
import * as tf from '@tensorflow/tfjs';
import { AudioInputError } from '../audio/errors';
import { resample } from '../audio/resample';
import type { AudioClip } from '../audio/types';
import { melFilterBank } from './mel';

/** Whisper's constants. */
export const WHISPER_SAMPLE_RATE = 16000;
/** Whisper's window and DFT size (25 ms at 16 kHz). */
export const WHISPER_N_FFT = 400;
/** Whisper's hop between frames (10 ms at 16 kHz: 100 frames per second). */
export const WHISPER_HOP_LENGTH = 160;
/** 30 s at 16 kHz: what Whisper pads or trims every clip to. */
export const WHISPER_CHUNK_SAMPLES = 480_000;

/** One clip: samples at the extractor's rate, or a clip whose rate is checked against it. */
export type ClipInput = Float32Array | AudioClip;

/**
 * Options of the log-mel frontend ({@link logMelSpectrogram}, {@link WhisperFeatureExtractor}); the defaults are
 * Whisper's.
 */
export interface LogMelOptions {
  /** Mel bins: 80 (Whisper up to large-v2) or 128 (large-v3); any positive integer works. Default 80. */
  nMels?: number;
  /** Rate the input must have (default 16000); resample first with `resample` or `loadAudio`. */
  sampleRate?: number;
  /** Window and DFT size (default 400). */
  nFft?: number;
  /** Samples between frames (default 160). */
  hopLength?: number;
  /**
   * Samples each clip is zero-padded or trimmed to before framing. A number (default 480000, Whisper's 30 s:
   * every clip gives exactly 3000 frames), or 'longest': no trimming, every clip padded to the longest in the
   * batch (a single clip is used as is), giving framesFor(longest) frames. HF's encoder accepts only 3000
   * frames; this package's encoder accepts any count up to its position table.
   */
  length?: number | 'longest';
  /** 'mels-frames' (default): [B, nMels, T], HF's `input_features`. 'frames-mels': [B, T, nMels], what a channels-last Conv1d reads. */
  layout?: 'mels-frames' | 'frames-mels';
}

/** Frames a clip of `samples` samples gives (after padding or trimming): floor(samples / hop), the last STFT frame dropped. */
export function framesFor(samples: number, hopLength = WHISPER_HOP_LENGTH): number {
  return Math.floor(samples / hopLength);
}

/** Output of `WhisperFeatureExtractor.extract`. */
export interface LogMelFeatures {
  /** [B, nMels, T] or [B, T, nMels] (the layout option). The caller disposes it. */
  features: tf.Tensor3D;
  /** Per clip: frames whose centre lies inside the clip's own samples (min(T, ceil(length / hop))): the rest is padding. */
  validFrames: number[];
}

interface Resolved {
  nMels: number;
  sampleRate: number;
  nFft: number;
  hopLength: number;
  length: number | 'longest';
  layout: 'mels-frames' | 'frames-mels';
}

function resolve(options: LogMelOptions): Resolved {
  const r: Resolved = {
    nMels: options.nMels ?? 80,
    sampleRate: options.sampleRate ?? WHISPER_SAMPLE_RATE,
    nFft: options.nFft ?? WHISPER_N_FFT,
    hopLength: options.hopLength ?? WHISPER_HOP_LENGTH,
    length: options.length ?? WHISPER_CHUNK_SAMPLES,
    layout: options.layout ?? 'mels-frames',
  };
  const posInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
  if (!posInt(r.nMels) || !posInt(r.sampleRate) || !posInt(r.hopLength) || !posInt(r.nFft) || r.nFft % 2 !== 0) {
    throw new Error(`log-mel options: expected positive integers nMels, sampleRate, hopLength and an even nFft, got nMels ${r.nMels}, sampleRate ${r.sampleRate}, hopLength ${r.hopLength}, nFft ${r.nFft}`);
  }
  if (r.length !== 'longest' && !(posInt(r.length) && (r.length as number) > r.nFft / 2)) {
    throw new Error(`log-mel options: length must be 'longest' or an integer over nFft / 2 = ${r.nFft / 2} samples, got ${r.length}`);
  }
  if (r.layout !== 'mels-frames' && r.layout !== 'frames-mels') {
    throw new Error(`log-mel options: layout must be 'mels-frames' or 'frames-mels', got ${String(r.layout)}`);
  }
  return r;
}

/**
 * The folded, periodic-Hann-windowed DFT bases for frames of nFft samples: `cos` [nFft/2 + 1, nBins] applied to
 * e[n] = x[n] + x[nFft - n] (e[0] = x[0], e[nFft/2] = x[nFft/2]) gives the real parts, `sin` [nFft/2 - 1, nBins]
 * applied to o[n] = x[n] - x[nFft - n] (n = 1 .. nFft/2 - 1) the imaginary parts, up to sign.
 */
export function dftBasis(nFft: number): { cos: Float32Array; sin: Float32Array } {
  const half = nFft / 2;
  const nBins = half + 1;
  const cos = new Float32Array((half + 1) * nBins);
  const sin = new Float32Array((half - 1) * nBins);
  for (let n = 0; n <= half; n++) {
    const window = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft);
    for (let k = 0; k < nBins; k++) {
      const angle = (2 * Math.PI * ((k * n) % nFft)) / nFft; // reduced exactly, so large k * n keep full precision
      cos[n * nBins + k] = window * Math.cos(angle);
      if (n >= 1 && n < half) sin[(n - 1) * nBins + k] = window * Math.sin(angle);
    }
  }
  return { cos, sin };
}

const basisCache = new Map<number, { cos: Float32Array; sin: Float32Array }>();
const melCache = new Map<string, Float32Array>();

function melFor(r: Resolved): Float32Array {
  const key = `${r.nFft}:${r.nMels}:${r.sampleRate}`;
  let m = melCache.get(key);
  if (!m) {
    m = melFilterBank({ nFreqs: r.nFft / 2 + 1, nMels: r.nMels, sampleRate: r.sampleRate, fMin: 0, fMax: r.sampleRate / 2 });
    melCache.set(key, m);
  }
  return m;
}

function basisFor(nFft: number): { cos: Float32Array; sin: Float32Array } {
  let b = basisCache.get(nFft);
  if (!b) basisCache.set(nFft, (b = dftBasis(nFft)));
  return b;
}

interface Folded {
  /** [B * T, nFft/2 + 1] and [B * T, nFft/2 - 1]: the frames folded for the cos and sin bases. */
  even: Float32Array;
  odd: Float32Array;
  batch: number;
  frames: number;
  validFrames: number[];
}

/** Checks the clips, reflect-pads each (in JS) and cuts and folds its frames. */
function prepareBatch(audio: ClipInput | readonly ClipInput[], r: Resolved): Folded {
  const list = Array.isArray(audio) ? (audio as readonly ClipInput[]) : [audio as ClipInput];
  if (list.length === 0) throw new AudioInputError('empty', 'log-mel: got an empty batch; pass at least one clip');
  const clips = list.map((clip, i) => {
    const samples = clip instanceof Float32Array ? clip : clip?.samples;
    if (!(samples instanceof Float32Array)) {
      throw new AudioInputError('bad-samples', `log-mel: clip ${i} is not a Float32Array or { samples, sampleRate }; decode it with decodeWav or loadAudio first`);
    }
    if (!(clip instanceof Float32Array) && clip.sampleRate !== r.sampleRate) {
      throw new AudioInputError('bad-sample-rate', `log-mel: clip ${i} is at ${clip.sampleRate} Hz but the frontend expects ${r.sampleRate} Hz; resample it first (loadAudio(x, { sampleRate: ${r.sampleRate} }) or resample())`);
    }
    if (samples.length === 0) throw new AudioInputError('empty', `log-mel: clip ${i} has 0 samples`);
    for (let j = 0; j < samples.length; j++) {
      if (!Number.isFinite(samples[j]!)) throw new AudioInputError('bad-samples', `log-mel: clip ${i} sample ${j} is ${samples[j]}; samples must be finite`);
    }
    return samples;
  });
  const length = r.length === 'longest' ? Math.max(...clips.map((c) => c.length)) : r.length;
  const half = r.nFft / 2;
  if (length <= half) {
    throw new AudioInputError('too-short', `log-mel: the longest clip has ${length} samples but reflect padding by ${half} needs more than ${half} (${((half + 1) / r.sampleRate * 1000).toFixed(1)} ms); pad the clip or use the default 30 s length`);
  }
  const frames = framesFor(length, r.hopLength);
  const width = length + r.nFft;
  const row = new Float32Array(width);
  const nEven = half + 1;
  const nOdd = half - 1;
  const even = new Float32Array(clips.length * frames * nEven);
  const odd = new Float32Array(clips.length * frames * nOdd);
  clips.forEach((samples, b) => {
    row.fill(0);
    const used = Math.min(samples.length, length);
    row.set(samples.subarray(0, used), half);
    // Reflect padding mirrors around the first and last sample without repeating them (torch's 'reflect'),
    // over the zero-padded or trimmed signal of `length` samples.
    for (let j = 1; j <= half; j++) {
      row[half - j] = row[half + j]!;
      row[half + length - 1 + j] = row[half + length - 1 - j]!;
    }
    for (let f = 0; f < frames; f++) {
      const x = f * r.hopLength; // frame f is row[x .. x + nFft)
      const e = (b * frames + f) * nEven;
      const o = (b * frames + f) * nOdd;
      even[e] = row[x]!;
      even[e + half] = row[x + half]!;
      for (let n = 1; n < half; n++) {
        const a = row[x + n]!;
        const c = row[x + r.nFft - n]!;
        even[e + n] = a + c;
        odd[o + n - 1] = a - c;
      }
    }
  });
  const validFrames = clips.map((c) => Math.min(frames, Math.ceil(Math.min(c.length, length) / r.hopLength)));
  return { even, odd, batch: clips.length, frames, validFrames };
}

interface Bases {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  mel: tf.Tensor2D;
}

/** The tensor pipeline: folded frames to log-mel [B, T, nMels] (or transposed). */
function logMelFromFolded({ even, odd, batch, frames }: Folded, r: Resolved, bases: Bases): tf.Tensor3D {
  return tf.tidy(() => {
    const half = r.nFft / 2;
    const re = tf.matMul(tf.tensor2d(even, [batch * frames, half + 1]), bases.cos); // [B*T, nBins]
    const im = tf.matMul(tf.tensor2d(odd, [batch * frames, half - 1]), bases.sin);
    const melSpec = tf.matMul(tf.add(tf.square(re), tf.square(im)), bases.mel); // [B*T, nMels]
    // clipByValue with JS bounds, not tf.maximum: wasm's broadcasting Maximum took 40% of the whole extraction.
    const logSpec = tf.div(tf.log(tf.clipByValue(melSpec, 1e-10, Number.MAX_VALUE)), Math.LN10);
    const perClip = tf.reshape(logSpec, [batch, frames * r.nMels]);
    // Each clip is floored at its own maximum - 8, as HF's batched extractor does.
    const maxima = tf.max(perClip, 1).dataSync();
    const rows = batch === 1 ? [perClip] : tf.split(perClip, batch, 0);
    const floored = rows.map((row, b) => tf.clipByValue(row, maxima[b]! - 8, Number.MAX_VALUE));
    const scaled = tf.div(tf.add(batch === 1 ? floored[0]! : tf.concat(floored, 0), 4), 4);
    const out = tf.reshape(scaled, [batch, frames, r.nMels]);
    return (r.layout === 'mels-frames' ? tf.transpose(out, [0, 2, 1]) : out) as tf.Tensor3D;
  });
}

function makeBases(r: Resolved): Bases {
  const half = r.nFft / 2;
  const { cos, sin } = basisFor(r.nFft);
  return {
    cos: tf.tensor2d(cos, [half + 1, half + 1]),
    sin: tf.tensor2d(sin, [half - 1, half + 1]),
    mel: tf.tensor2d(melFor(r), [half + 1, r.nMels]),
  };
}

/**
 * Whisper log-mel features of one clip or a batch, as a [B, nMels, T] tensor (or [B, T, nMels] with
 * layout 'frames-mels'); T is 3000 with the default 30 s length. The caller disposes the result.
 */
export function logMelSpectrogram(audio: ClipInput | readonly ClipInput[], options: LogMelOptions = {}): tf.Tensor3D {
  const r = resolve(options);
  const folded = prepareBatch(audio, r);
  return tf.tidy(() => logMelFromFolded(folded, r, makeBases(r)));
}

/**
 * A `WhisperFeatureExtractor`-like frontend with fixed options: the DFT basis and filterbank tensors are made once
 * and kept until `dispose()`. `extract` also says how many frames of each clip are real audio.
 */
export class WhisperFeatureExtractor {
  /** Mel bins. */
  readonly nMels: number;
  /** Rate the input must have (Hz). */
  readonly sampleRate: number;
  /** Window and DFT size. */
  readonly nFft: number;
  /** Samples between frames. */
  readonly hopLength: number;
  /** Samples every clip is padded or trimmed to, or 'longest' (the batch's longest clip). */
  readonly length: number | 'longest';
  /** Output layout: [B, nMels, T] ('mels-frames') or [B, T, nMels]. */
  readonly layout: 'mels-frames' | 'frames-mels';
  private readonly resolved: Resolved;
  private tensors: Bases | undefined;

  constructor(options: LogMelOptions = {}) {
    this.resolved = resolve(options);
    ({ nMels: this.nMels, sampleRate: this.sampleRate, nFft: this.nFft, hopLength: this.hopLength, length: this.length, layout: this.layout } = this.resolved);
  }

  /** Frames the features of a clip of `samples` samples have: fixed by `length`, or framesFor(samples) with 'longest'. */
  framesFor(samples: number): number {
    return framesFor(this.length === 'longest' ? samples : this.length, this.hopLength);
  }

  /** Log-mel features of one clip or a batch, with each clip's valid frame count. The caller disposes `features`. */
  extract(audio: ClipInput | readonly ClipInput[]): LogMelFeatures {
    const folded = prepareBatch(audio, this.resolved);
    this.tensors ??= makeBases(this.resolved);
    const features = tf.tidy(() => logMelFromFolded(folded, this.resolved, this.tensors!));
    return { features, validFrames: folded.validFrames };
  }

  /** Frees the cached basis and filterbank tensors (made again on the next `extract`). */
  dispose(): void {
    if (this.tensors) {
      tf.dispose([this.tensors.cos, this.tensors.sin, this.tensors.mel]);
      this.tensors = undefined;
    }
  }
}

/** Plain-JS log-mel features of one clip, frames-major: what `audioModality`'s `frontend` option returns. */
export interface LogMelFrames {
  /** [frames, melBins] row-major. */
  features: Float32Array;
  /** Frames T. */
  frames: number;
  /** Mel bins per frame. */
  melBins: number;
}

/**
 * One clip at any rate to Whisper log-mel features in plain JS ([frames, melBins], frames at 100 per second):
 * resampled to 16 kHz with `resample` when needed, then `logMelSpectrogram` with `length` (default 'longest': the
 * clip's own length, no 30 s padding). Its signature fits `audioModality({ frontend })`:
 * `frontend: (pcm, rate, bins) => whisperLogMelFrames(pcm, rate, bins)`.
 */
export function whisperLogMelFrames(pcm: Float32Array, sampleRate: number, melBins = 80, options: Omit<LogMelOptions, 'nMels' | 'layout'> = {}): LogMelFrames {
  const target = options.sampleRate ?? WHISPER_SAMPLE_RATE;
  const samples = sampleRate === target ? pcm : resample(pcm, sampleRate, target);
  const out = logMelSpectrogram(samples, { length: 'longest', ...options, nMels: melBins, layout: 'frames-mels' });
  const features = out.dataSync() as Float32Array;
  const frames = out.shape[1];
  out.dispose();
  return { features: Float32Array.from(features), frames, melBins };
}
