/**
 * The Perceiver resampler (Jaegle et al. 2021, "Perceiver"; as used by Alayrac et al. 2022, "Flamingo"): a fixed
 * number of learned latents cross-attend to a variable number of features, so every item leaves with the same
 * token count. As in Flamingo, each layer's keys and values are the features concatenated with the latents
 * themselves; each layer is pre-norm attention plus a GELU feed-forward, both residual, with a final LayerNorm.
 *
 * With `mediaPositions`, a learned embedding per feature position (`media_pos` [P, D], zero at init so a model
 * starts as without it) is added to the features first: Flamingo's time embeddings, which tell the latents *when*
 * a feature came (attention over a set is blind to order otherwise).
 *
 * Parameters (per layer i): `latents` [L, D], `layers.{i}.media_norm`, `layers.{i}.latent_norm`,
 * `layers.{i}.attn.{q,k,v,o}_proj` (no biases), `layers.{i}.ffn_norm`, `layers.{i}.ffn.{fc1,fc2}` (no biases), `norm`.
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, LayerNorm, MLP, Module, init } from '@chimera/core';

/** Options of {@link PerceiverResampler}. */
export interface PerceiverOptions {
  /** Learned latents, i.e. tokens per item after resampling (default 64, Flamingo). */
  numLatents?: number;
  /** Layers (default 6, Flamingo). */
  depth?: number;
  /** Attention heads (default 8) of width headDim (default 64). */
  heads?: number;
  /** Width of each attention head (default 64). */
  headDim?: number;
  /** Feed-forward hidden width as a multiple of the feature width (default 4). */
  ffMult?: number;
  /**
   * Learned position embeddings for up to this many feature positions per item (Flamingo's time embeddings),
   * zero-initialised; default none. Items with more features are refused.
   */
  mediaPositions?: number;
}

class PerceiverLayer extends Module {
  readonly media_norm: LayerNorm;
  readonly latent_norm: LayerNorm;
  readonly attn: Attention;
  readonly ffn_norm: LayerNorm;
  readonly ffn: MLP;

  constructor(dim: number, heads: number, headDim: number, ffMult: number) {
    super();
    this.media_norm = this.addModule('media_norm', new LayerNorm(dim));
    this.latent_norm = this.addModule('latent_norm', new LayerNorm(dim));
    this.attn = this.addModule('attn', new Attention({ dim, numHeads: heads, headDim }));
    this.ffn_norm = this.addModule('ffn_norm', new LayerNorm(dim));
    this.ffn = this.addModule('ffn', new MLP(dim, dim * ffMult, { activation: 'gelu', bias: false }));
  }

  /** media [B, N, D], latents [B, L, D] -> latents [B, L, D]. */
  forward(media: tf.Tensor, latents: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const normedLatents = this.latent_norm.forward(latents);
      const keys = tf.concat([this.media_norm.forward(media), normedLatents], 1); // [B, N + L, D]
      const attended = tf.add(latents, this.attn.forward(normedLatents, { context: keys }));
      return tf.add(attended, this.ffn.forward(this.ffn_norm.forward(attended)));
    });
  }
}

/**
 * Flamingo's Perceiver resampler: learned latents cross-attend to a variable number of features, so every item leaves
 * with numLatents tokens. features [B, N, D] -> [B, numLatents, D].
 */
export class PerceiverResampler extends Module {
  /** Feature width D. */
  readonly inputDim: number;
  /** Output width (equal to D). */
  readonly outputDim: number;
  /** Tokens per item after resampling. */
  readonly numLatents: number;
  /** Learned latents [numLatents, D]. */
  readonly latents: tf.Variable; // [L, D]
  /** The Perceiver layers. */
  readonly layers: PerceiverLayer[];
  /** Final LayerNorm. */
  readonly norm: LayerNorm;
  /** Per-position time embeddings [mediaPositions, D] (zero at init), or null. */
  readonly media_pos: tf.Variable | null; // [P, D]

  /** Works at the feature width `dim` (output width = input width, as in Flamingo). */
  constructor(dim: number, options: PerceiverOptions = {}) {
    super();
    const numLatents = options.numLatents ?? 64;
    const depth = options.depth ?? 6;
    const heads = options.heads ?? 8;
    const headDim = options.headDim ?? 64;
    const ffMult = options.ffMult ?? 4;
    for (const [key, value] of Object.entries({ dim, numLatents, depth, heads, headDim, ffMult })) {
      if (!(Number.isInteger(value) && value >= 1)) throw new Error(`PerceiverResampler: ${key} must be a positive integer, got ${value}`);
    }
    this.inputDim = dim;
    this.outputDim = dim;
    this.numLatents = numLatents;
    this.latents = this.addParameter('latents', init.normal([numLatents, dim], 1)); // torch.randn, as OpenFlamingo
    this.layers = this.addModuleList(
      'layers',
      Array.from({ length: depth }, () => new PerceiverLayer(dim, heads, headDim, ffMult)),
    );
    this.norm = this.addModule('norm', new LayerNorm(dim));
    const positions = options.mediaPositions;
    if (positions !== undefined && !(Number.isInteger(positions) && positions >= 1)) {
      throw new Error(`PerceiverResampler: mediaPositions must be a positive integer (or left out), got ${positions}`);
    }
    this.media_pos = positions === undefined ? null : this.addParameter('media_pos', tf.zeros([positions, dim]));
  }

  /** features [B, N, D] -> [B, numLatents, D]. */
  forward(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      checkFeatures('PerceiverResampler', features, this.inputDim);
      const batch = features.shape[0]!;
      if (this.media_pos) {
        const [positions, count] = [this.media_pos.shape[0]!, features.shape[1]!];
        if (count > positions) {
          throw new Error(
            `PerceiverResampler: an item has ${count} features but mediaPositions is ${positions}; raise mediaPositions ` +
              'to the longest item (e.g. the encoder tokens of the most windows) or shorten the items',
          );
        }
        features = tf.add(features, tf.slice(this.media_pos, [0, 0], [count, this.inputDim]));
      }
      let latents: tf.Tensor = tf.broadcastTo(tf.expandDims(this.latents, 0), [batch, this.numLatents, this.inputDim]);
      for (const layer of this.layers) latents = layer.forward(features, latents);
      return this.norm.forward(latents);
    });
  }
}

/** Throws unless `features` is [B, N, dim]. */
export function checkFeatures(who: string, features: tf.Tensor, dim: number): void {
  if (features.rank !== 3 || features.shape[2] !== dim) {
    throw new Error(`${who}: expected features [items, N, ${dim}] (the encoder's feature width), got [${features.shape}]`);
  }
}
