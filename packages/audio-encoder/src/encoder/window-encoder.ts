/**
 * A small transformer over the encoded windows of one clip: Audio Flamingo's "audio representation transformation
 * layers" (Kong et al. 2024), which let the model relate windows before cross-attention. Every token of every
 * window attends to every other; a learned per-window embedding says which window a token came from (the encoder
 * restarts its positions in each window). Blocks are Whisper's pre-LN blocks; a final LayerNorm closes it.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, MASK_VALUE, Module, init } from '@chimera/core';
import { WhisperEncoderLayer } from './block';

/** Options of {@link WindowEncoder}. */
export interface WindowEncoderOptions {
  /** Token width (the encoder's output width). */
  dim: number;
  /** Blocks (Audio Flamingo: 3). Default 2. */
  layers?: number;
  /** Attention heads (default: dim / 64, at least 1, a divisor of dim). */
  heads?: number;
  /** MLP width (default 4 * dim). */
  ffnDim?: number;
  /** Windows the window embedding has rows for (default 16, Audio Flamingo's maximum). */
  maxWindows?: number;
}

/**
 * Audio Flamingo's transformer over the encoded windows of one clip: every token attends to every other, with a
 * learned per-window embedding. tokens [N, dim] -> [N, dim].
 */
export class WindowEncoder extends Module {
  /** Token width. */
  readonly dim: number;
  /** Windows the window embedding has rows for. */
  readonly maxWindows: number;
  /** [maxWindows, dim]. */
  readonly window_embed: tf.Variable;
  /** Whisper-style pre-LN blocks. */
  readonly layers: WhisperEncoderLayer[];
  /** Final LayerNorm. */
  readonly layer_norm: LayerNorm;

  constructor(options: WindowEncoderOptions) {
    super();
    const dim = options.dim;
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`WindowEncoder: dim must be a positive integer, got ${dim}`);
    const heads = options.heads ?? Math.max(1, gcd(dim, Math.max(1, Math.round(dim / 64))));
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) {
      throw new Error(`WindowEncoder: heads must divide dim (${dim}), got ${heads}`);
    }
    const depth = options.layers ?? 2;
    if (!Number.isInteger(depth) || depth < 0) throw new Error(`WindowEncoder: layers must be an integer >= 0, got ${depth}`);
    this.maxWindows = options.maxWindows ?? 16;
    if (!Number.isInteger(this.maxWindows) || this.maxWindows < 1) {
      throw new Error(`WindowEncoder: maxWindows must be a positive integer, got ${this.maxWindows}`);
    }
    this.dim = dim;
    this.window_embed = this.addParameter('window_embed', init.normal([this.maxWindows, dim], 0.02));
    const config = { dModel: dim, numHeads: heads, ffnDim: options.ffnDim ?? 4 * dim, activation: 'gelu', layerNormEps: 1e-5 };
    this.layers = this.addModuleList('layers', Array.from({ length: depth }, () => new WhisperEncoderLayer(config)));
    this.layer_norm = this.addModule('layer_norm', new LayerNorm(dim));
  }

  /** tokens [N, dim] of one clip, `windowOf[n]` the window token n came from -> [N, dim]. */
  forward(tokens: tf.Tensor2D, windowOf: readonly number[]): tf.Tensor2D {
    return this.forwardBatch([{ tokens, windowOf }])[0]!;
  }

  /**
   * Several clips in one pass: each clip's tokens padded to the longest and masked out of attention, so a batch
   * costs one set of kernels instead of one per clip. Returns each clip's [N_i, dim].
   */
  forwardBatch(clips: readonly { tokens: tf.Tensor2D; windowOf: readonly number[] }[]): tf.Tensor2D[] {
    if (clips.length === 0) throw new Error('WindowEncoder: forwardBatch needs at least one clip');
    clips.forEach(({ tokens, windowOf }, i) => {
      const which = clips.length > 1 ? ` (clip ${i})` : '';
      if (tokens.rank !== 2 || tokens.shape[1] !== this.dim) {
        throw new Error(`WindowEncoder: expected tokens [N, ${this.dim}]${which}, got [${tokens.shape}]`);
      }
      if (windowOf.length !== tokens.shape[0]) {
        throw new Error(`WindowEncoder: windowOf must name a window per token (${tokens.shape[0]})${which}, got ${windowOf.length}`);
      }
      const top = Math.max(...windowOf);
      if (top >= this.maxWindows) {
        throw new Error(`WindowEncoder: window ${top} has no embedding row (maxWindows ${this.maxWindows})${which}; build it with a larger maxWindows`);
      }
    });
    const lengths = clips.map((c) => c.tokens.shape[0]);
    const longest = Math.max(...lengths);
    const padded = lengths.some((n) => n < longest);
    return tf.tidy(() => {
      const ids = new Int32Array(clips.length * longest);
      clips.forEach((c, b) => ids.set(c.windowOf, b * longest)); // padding rows take window 0; they are masked
      const stacked = tf.stack(clips.map((c) => (c.tokens.shape[0] < longest ? tf.pad(c.tokens, [[0, longest - c.tokens.shape[0]], [0, 0]]) : c.tokens)));
      let x = tf.add(stacked, tf.reshape(tf.gather(this.window_embed, tf.tensor1d(ids, 'int32')), [clips.length, longest, this.dim])) as tf.Tensor3D;
      const bias = padded ? keyBias(lengths, longest) : undefined;
      for (const layer of this.layers) x = layer.forward(x, bias);
      const out = this.layer_norm.forward(x);
      return clips.map((_, b) => tf.reshape(tf.slice(out, [b, 0, 0], [1, lengths[b]!, this.dim]), [lengths[b]!, this.dim]) as tf.Tensor2D);
    });
  }
}

/** [B, 1, 1, S]: 0 on each clip's tokens, MASK_VALUE on padding. */
function keyBias(lengths: readonly number[], longest: number): tf.Tensor4D {
  const bias = new Float32Array(lengths.length * longest).fill(MASK_VALUE);
  lengths.forEach((n, b) => bias.fill(0, b * longest, b * longest + n));
  return tf.tensor4d(bias, [lengths.length, 1, 1, longest]);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
