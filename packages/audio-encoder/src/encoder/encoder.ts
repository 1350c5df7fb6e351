/**
 * The Whisper audio encoder (Radford et al. 2022; openai/whisper `AudioEncoder`, HF `WhisperEncoder`) with
 * multi-layer taps and optional average pooling of the output (Audio Flamingo 3, Goel et al. 2025, and
 * Qwen2-Audio, Chu et al. 2024: AvgPool1d(2) after the blocks, before the final LayerNorm).
 *
 * Data walk, for log-mel features [B, T, mels] (frames x bins, NWC; T any length up to 2 * maxSourcePositions):
 *   conv1 (k3, pad 1) + GELU -> conv2 (k3, stride 2, pad 1) + GELU -> [B, T', D], T' = ceil(T / 2)
 *   -> + embed_positions[0..T') = hidden state 0 -> layers[0..L-1] -> (avg pool) -> layer_norm = the output.
 * HF's encoder refuses anything but 3000 frames; the positions are fixed sinusoids, so a shorter clip simply uses
 * the first T' rows (what openai/whisper's own code does when given fewer frames).
 *
 * Tap indices follow HF's `hidden_states` tuple for Whisper: 0 is the embeddings, i in 1..L-1 is the output of
 * layer i, and L is the final output after `layer_norm` (Whisper's tuple ends with the normed state, unlike
 * CLIP's). Negative indices count from the end (-1 = L). Taps are never pooled; `pool` applies to `hidden`.
 *
 * `lengths` (mel frames per row) pads and masks: frames at or past a row's length are zeroed before conv1, conv1's
 * output is zeroed there before conv2 (whose padding is zero too), and attention ignores those keys, so a row's
 * first ceil(length / 2) outputs equal encoding that row's frames alone (tested).
 */
import * as tf from '@tensorflow/tfjs';
import { AvgPool1d, Conv1d, LayerNorm, MASK_VALUE, Module, getActivation, type ActivationFn } from '@chimera/core';
import { encoderPositions, maxInputFrames, validateWhisperEncoderConfig, type WhisperEncoderConfig } from './config';
import { WhisperEncoderLayer } from './block';
import { whisperSinusoidTensor } from './positions';

/** An HF hidden_states index: 0 embeddings, 1..L (L = after layer_norm), negative from the end. */
export type EncoderTap = number;

/** Options of {@link WhisperEncoder.forward}. */
export interface WhisperEncoderForwardOptions {
  /** Hidden states to return besides the output (HF hidden_states indices, see the file comment). */
  taps?: EncoderTap | readonly EncoderTap[];
  /** Valid mel frames per batch row (default: all T); the rest is padding, zeroed and masked. */
  lengths?: readonly number[];
  /** Average-pool the output over time by this factor before layer_norm (1 = none, 2 = Audio Flamingo 3). */
  pool?: number;
}

/** What {@link WhisperEncoder.forward} returns; the caller owns the tensors. */
export interface WhisperEncoderOutput {
  /** Shape [B, T'', D]: the output after layer_norm (T'' = floor(T' / pool)). */
  hidden: tf.Tensor3D;
  /** One [B, T', D] per requested tap, in order (never pooled). */
  taps: tf.Tensor3D[];
  /** Valid output positions per row in `hidden` (pooled; 0 when a row is shorter than one pool), and in the taps. */
  validPositions: number[];
  /** Valid positions per row in the taps (not pooled). */
  validTapPositions: number[];
}

/**
 * HF's WhisperEncoder by name: two convolutions, fixed sinusoidal positions, pre-LN blocks and a final LayerNorm.
 * log-mel features [B, T, mels] (frames-major) -> [B, ceil(T / 2), dModel] (then pooled by `pool`); padded rows
 * are masked, so a padded clip encodes exactly as alone.
 */
export class WhisperEncoder extends Module {
  /** The encoder's config. */
  readonly config: WhisperEncoderConfig;
  /** First convolution, mels -> dModel (kernel 3, padding 1). */
  readonly conv1: Conv1d;
  /** Second convolution, dModel -> dModel (kernel 3, stride 2, padding 1): halves the frame rate. */
  readonly conv2: Conv1d;
  /** Shape [maxSourcePositions, D]: fixed sinusoids, a buffer (HF keeps it frozen too). */
  readonly embedPositions: tf.Variable;
  /** The encoder blocks. */
  readonly layers: WhisperEncoderLayer[];
  /** Final LayerNorm. */
  readonly layer_norm: LayerNorm;
  private readonly act: ActivationFn;

  constructor(config: WhisperEncoderConfig) {
    super();
    validateWhisperEncoderConfig(config);
    this.config = { ...config };
    const { numMelBins: mels, dModel: dim } = config;
    this.conv1 = this.addModule('conv1', new Conv1d(mels, dim, 3, { padding: 1 }));
    this.conv2 = this.addModule('conv2', new Conv1d(dim, dim, 3, { stride: 2, padding: 1 }));
    const positions = new PositionTable(config.maxSourcePositions, dim);
    this.addModule('embed_positions', positions);
    this.embedPositions = positions.weight;
    this.layers = this.addModuleList('layers', Array.from({ length: config.numLayers }, () => new WhisperEncoderLayer(config)));
    this.layer_norm = this.addModule('layer_norm', new LayerNorm(dim, { eps: config.layerNormEps }));
    this.act = getActivation(config.activation);
  }

  /** Output positions for `frames` mel frames (after conv2's stride 2 and pooling by `pool`). */
  outputLength(frames: number, pool = 1): number {
    this.checkFrames(frames);
    return Math.floor(encoderPositions(frames) / checkPool(pool));
  }

  /** The non-negative hidden_states index a tap refers to; throws when out of range. */
  resolveTap(tap: EncoderTap): number {
    const count = this.config.numLayers;
    if (!Number.isInteger(tap) || tap > count || tap < -(count + 1)) {
      throw new Error(
        `WhisperEncoder: tap ${JSON.stringify(tap)} is out of range; this encoder has ${count} layers, so hidden_states ` +
          `indices run 0..${count} or -${count + 1}..-1 (0 = embeddings, ${count} = -1 = the output after layer_norm)`,
      );
    }
    return tap < 0 ? count + 1 + tap : tap;
  }

  /** features [B, T, mels] -> output and taps (see the file comment). */
  forward(features: tf.Tensor3D, options: WhisperEncoderForwardOptions = {}): WhisperEncoderOutput {
    const taps = (Array.isArray(options.taps) ? (options.taps as readonly number[]) : options.taps === undefined ? [] : [options.taps as number]).map(
      (t) => this.resolveTap(t),
    );
    const pool = checkPool(options.pool ?? 1);
    const [batch, frames] = this.checkFeatures(features);
    const lengths = this.checkLengths(options.lengths, batch, frames);
    const validTapPositions = lengths.map(encoderPositions);
    const validPositions = validTapPositions.map((n) => Math.floor(n / pool));
    const count = this.config.numLayers;
    const out = tf.tidy(() => {
      const padded = lengths.some((n) => n < frames);
      let x: tf.Tensor3D = padded ? tf.mul(features, frameMask(lengths, frames)) : features;
      x = this.act(this.conv1.forward(x)) as tf.Tensor3D;
      if (padded) x = tf.mul(x, frameMask(lengths, frames));
      x = this.act(this.conv2.forward(x)) as tf.Tensor3D; // [B, T', D]
      const positions = x.shape[1]!;
      x = tf.add(x, tf.slice(this.embedPositions, [0, 0], [positions, -1])) as tf.Tensor3D;
      const bias = padded ? keyBias(validTapPositions, positions) : undefined;
      const states = new Map<number, tf.Tensor3D>();
      if (taps.includes(0)) states.set(0, x);
      for (let i = 0; i < count; i++) {
        x = this.layers[i]!.forward(x, bias);
        if (i + 1 < count && taps.includes(i + 1)) states.set(i + 1, x);
      }
      if (taps.includes(count)) states.set(count, this.layer_norm.forward(x) as tf.Tensor3D);
      const pooled = pool === 1 ? x : (new AvgPool1d(pool).forward(x) as tf.Tensor3D);
      const hidden = this.layer_norm.forward(pooled) as tf.Tensor3D;
      return { hidden, taps: taps.map((t) => states.get(t)!) };
    });
    return { ...out, validPositions, validTapPositions };
  }

  private checkFrames(frames: number): void {
    const max = maxInputFrames(this.config);
    if (!Number.isInteger(frames) || frames < 1) throw new Error(`WhisperEncoder: expected a positive number of mel frames, got ${frames}`);
    if (frames > max) {
      throw new Error(
        `WhisperEncoder: ${frames} mel frames is more than this encoder takes: its ${this.config.maxSourcePositions} ` +
          `positions cover ${max} frames (${max / 100} s at Whisper's 100 frames/s) after conv2's stride 2; ` +
          'split the clip into windows (audioModality\'s windows option) or trim it',
      );
    }
  }

  private checkFeatures(features: tf.Tensor): [number, number] {
    const mels = this.config.numMelBins;
    if (!(features instanceof tf.Tensor) || features.isDisposed) {
      throw new Error('WhisperEncoder: features must be a live tf.Tensor [batch, frames, mel bins]');
    }
    if (features.rank !== 3 || features.shape[2] !== mels) {
      const hint =
        features.rank === 2 && features.shape[1] === mels
          ? '; add a batch axis (tf.expandDims(features, 0))'
          : features.rank === 3 && features.shape[1] === mels
            ? '; the features look [batch, mels, frames] (HF layout): transpose them to [batch, frames, mels]'
            : '';
      throw new Error(`WhisperEncoder: expected log-mel features [batch, frames, ${mels}], got [${features.shape}]${hint}`);
    }
    if (features.dtype !== 'float32') throw new Error(`WhisperEncoder: expected float32 features, got ${features.dtype}`);
    if (features.shape[0] === 0) throw new Error('WhisperEncoder: the batch is empty (batch size 0)');
    this.checkFrames(features.shape[1]!);
    return [features.shape[0]!, features.shape[1]!];
  }

  private checkLengths(lengths: readonly number[] | undefined, batch: number, frames: number): number[] {
    if (lengths === undefined) return new Array<number>(batch).fill(frames);
    if (!Array.isArray(lengths) || lengths.length !== batch) {
      throw new Error(`WhisperEncoder: lengths must list one frame count per batch row (${batch}), got ${JSON.stringify(lengths)}`);
    }
    for (const n of lengths) {
      if (!Number.isInteger(n) || n < 1 || n > frames) {
        throw new Error(`WhisperEncoder: each length must be an integer in 1..${frames} (the padded frame count), got ${n}`);
      }
    }
    return [...lengths];
  }
}

/** Holds `embed_positions.weight` as a non-trainable buffer under HF's name. */
class PositionTable extends Module {
  readonly weight: tf.Variable;
  constructor(length: number, dim: number) {
    super();
    this.weight = this.addBuffer('weight', whisperSinusoidTensor(length, dim));
  }
}

function checkPool(pool: number): number {
  if (!Number.isInteger(pool) || pool < 1) throw new Error(`WhisperEncoder: pool must be an integer >= 1 (1 = none, 2 = Audio Flamingo 3), got ${pool}`);
  return pool;
}

/** Shape [B, T, 1]: 1 for frames before each row's length, 0 after. */
function frameMask(lengths: readonly number[], frames: number): tf.Tensor3D {
  const mask = new Float32Array(lengths.length * frames);
  lengths.forEach((n, b) => mask.fill(1, b * frames, b * frames + n));
  return tf.tensor3d(mask, [lengths.length, frames, 1]);
}

/** Shape [B, 1, 1, S]: 0 on valid keys, MASK_VALUE on padded ones. */
function keyBias(valid: readonly number[], positions: number): tf.Tensor4D {
  const bias = new Float32Array(valid.length * positions).fill(MASK_VALUE);
  valid.forEach((n, b) => bias.fill(0, b * positions, b * positions + n));
  return tf.tensor4d(bias, [valid.length, 1, 1, positions]);
}
