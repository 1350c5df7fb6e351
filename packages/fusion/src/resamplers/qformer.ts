/**
 * A Q-Former-style resampler, simplified from BLIP-2 (Li et al. 2023, "BLIP-2: Bootstrapping Language-Image
 * Pre-training with Frozen Image Encoders and Large Language Models"): learned query tokens pass through layers of
 * self-attention among the queries, cross-attention from the queries to the (LayerNorm-ed) image features, and a
 * GELU feed-forward. Simplified: pre-norm residual blocks with cross-attention in every layer, no text branch and
 * no BERT initialisation; the output is the queries after a final LayerNorm.
 *
 * Parameters: `query_tokens` [Q, dim], `media_norm`, and per layer i `layers.{i}.self_norm`, `self_attn`,
 * `cross_norm`, `cross_attn` (keys/values from the feature width), `ffn_norm`, `ffn`; then `norm`.
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, LayerNorm, MLP, Module, init } from '@chimera/core';
import { checkFeatures } from './perceiver';

/** Options of {@link QFormerResampler}. */
export interface QFormerOptions {
  /** Learned queries, i.e. tokens per item after resampling (default 32, BLIP-2). */
  numQueries?: number;
  /** Layers (default 2). */
  depth?: number;
  /** Width of the queries (default: the feature width). */
  dim?: number;
  /** Attention heads (default 8); must divide dim. */
  heads?: number;
  /** Feed-forward hidden width as a multiple of dim (default 4). */
  ffMult?: number;
}

class QFormerLayer extends Module {
  readonly self_norm: LayerNorm;
  readonly self_attn: Attention;
  readonly cross_norm: LayerNorm;
  readonly cross_attn: Attention;
  readonly ffn_norm: LayerNorm;
  readonly ffn: MLP;

  constructor(dim: number, featureDim: number, heads: number, ffMult: number) {
    super();
    this.self_norm = this.addModule('self_norm', new LayerNorm(dim));
    this.self_attn = this.addModule('self_attn', new Attention({ dim, numHeads: heads, qkvBias: true, outBias: true }));
    this.cross_norm = this.addModule('cross_norm', new LayerNorm(dim));
    this.cross_attn = this.addModule(
      'cross_attn',
      new Attention({ dim, numHeads: heads, kvInputDim: featureDim, qkvBias: true, outBias: true }),
    );
    this.ffn_norm = this.addModule('ffn_norm', new LayerNorm(dim));
    this.ffn = this.addModule('ffn', new MLP(dim, dim * ffMult, { activation: 'gelu' }));
  }

  /** queries [B, Q, dim], media [B, N, featureDim] -> [B, Q, dim]. */
  forward(queries: tf.Tensor, media: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = tf.add(queries, this.self_attn.forward(this.self_norm.forward(queries)));
      h = tf.add(h, this.cross_attn.forward(this.cross_norm.forward(h), { context: media }));
      return tf.add(h, this.ffn.forward(this.ffn_norm.forward(h)));
    });
  }
}

/**
 * A simplified BLIP-2 Q-Former: learned queries pass through self-attention, cross-attention to the features and a
 * feed-forward per layer. features [B, N, featureDim] -> [B, numQueries, dim].
 */
export class QFormerResampler extends Module {
  /** Feature width in. */
  readonly inputDim: number;
  /** Width of the queries out. */
  readonly outputDim: number;
  /** Queries, i.e. tokens per item after resampling. */
  readonly numLatents: number;
  /** Learned queries [numQueries, dim]. */
  readonly query_tokens: tf.Variable; // [Q, dim]
  /** LayerNorm on the features. */
  readonly media_norm: LayerNorm;
  /** The Q-Former layers. */
  readonly layers: QFormerLayer[];
  /** Final LayerNorm. */
  readonly norm: LayerNorm;

  constructor(featureDim: number, options: QFormerOptions = {}) {
    super();
    const numQueries = options.numQueries ?? 32;
    const depth = options.depth ?? 2;
    const dim = options.dim ?? featureDim;
    const heads = options.heads ?? 8;
    const ffMult = options.ffMult ?? 4;
    for (const [key, value] of Object.entries({ featureDim, numQueries, depth, dim, heads, ffMult })) {
      if (!(Number.isInteger(value) && value >= 1)) throw new Error(`QFormerResampler: ${key} must be a positive integer, got ${value}`);
    }
    if (dim % heads !== 0) throw new Error(`QFormerResampler: heads (${heads}) must divide dim (${dim})`);
    this.inputDim = featureDim;
    this.outputDim = dim;
    this.numLatents = numQueries;
    this.query_tokens = this.addParameter('query_tokens', init.normal([numQueries, dim], 0.02));
    this.media_norm = this.addModule('media_norm', new LayerNorm(featureDim));
    this.layers = this.addModuleList(
      'layers',
      Array.from({ length: depth }, () => new QFormerLayer(dim, featureDim, heads, ffMult)),
    );
    this.norm = this.addModule('norm', new LayerNorm(dim));
  }

  /** features [B, N, featureDim] -> [B, numQueries, dim]. */
  forward(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      checkFeatures('QFormerResampler', features, this.inputDim);
      const batch = features.shape[0]!;
      const media = this.media_norm.forward(features);
      let queries: tf.Tensor = tf.broadcastTo(tf.expandDims(this.query_tokens, 0), [batch, this.numLatents, this.outputDim]);
      for (const layer of this.layers) queries = layer.forward(queries, media);
      return this.norm.forward(queries);
    });
  }
}
