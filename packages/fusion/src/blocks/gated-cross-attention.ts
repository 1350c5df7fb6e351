/**
 * Flamingo's GATED XATTN-DENSE block (Alayrac et al. 2022, "Flamingo: a Visual Language Model for Few-Shot
 * Learning"), inserted between frozen LM layers:
 *
 *   h = x + tanh(attn_gate) * hasMedia * xattn(attn_norm(x), media)
 *   y = h + tanh(ff_gate) * ffn(ff_norm(h))
 *
 * Both gates start at zero, so the block is exactly the identity until it trains. Keys and values come from the
 * media tokens (a resampler's latents) in the forward context; an additive mask lets each text position see only
 * the latest preceding item or all preceding items, and positions before any item get a zero cross-attention
 * output (OpenFlamingo masks them the same way). `maskFeedForward` also zeroes the feed-forward there, as Llama 3.2
 * Vision's cross-attention layers do. With a KV cache the media keys/values are computed once, on the first call,
 * and kept in the cache's static slot `cacheSlot`.
 *
 * Parameters: `attn_norm`, `attn.{q,k,v,o}_proj` (the LLM's head layout; k/v from the media width), `attn_gate`
 * [1], `ff_norm`, `ff.{fc1,fc2}` (GELU, no biases), `ff_gate` [1].
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, LayerNorm, MLP, Module, RMSNorm } from '@chimera/core';
import type { BlockContext } from '@chimera/llm';

/**
 * What a cross-attention strategy puts in the forward context for its blocks. The mask covers `rows` positions:
 * the batch's T, or T + 1 for a generation prompt, whose extra last row is what generated tokens see.
 */
export type CrossAttentionContext = {
  /** Shape [B, K, kvDim]: each row's media tokens, M slots of N tokens (empty slots are zeros and masked). */
  media: tf.Tensor;
  /** [B, 1, rows, K] additive (0 attend, MASK_VALUE not). */
  bias: tf.Tensor;
  /** Shape [B, rows]: 1 where a position sees at least one item. */
  hasMedia: tf.Tensor;
};

/** Construction options of {@link GatedCrossAttentionBlock}. */
export interface GatedCrossAttentionOptions {
  /** Width of the residual stream (the LLM's hidden size). */
  dim: number;
  /** Width of the media tokens (keys/values input). */
  kvDim: number;
  /** Query heads of the cross-attention. */
  numHeads: number;
  /** Default numHeads. Must equal the LLM's when the block uses the LLM's KV cache. */
  numKvHeads?: number;
  /** Default dim / numHeads. */
  headDim?: number;
  /** Feed-forward hidden width as a multiple of dim (default 4, Flamingo). */
  ffMult?: number;
  /** 'layer' (Flamingo, default) or 'rms' (Llama 3.2). */
  norm?: 'layer' | 'rms';
  /** Also zero the feed-forward at positions without media (Llama 3.2). Default false (Flamingo). */
  maskFeedForward?: boolean;
  /** The key of the forward context holding this block's CrossAttentionContext. */
  contextKey: string;
  /** The KV cache's static slot that holds this block's media keys/values during generation. */
  cacheSlot: number;
}

/**
 * Flamingo's GATED XATTN-DENSE block, inserted between LLM layers: h = x + tanh(attn_gate) * hasMedia *
 * xattn(attn_norm(x), media), then y = h + tanh(ff_gate) * ffn(ff_norm(h)). Both gates start at zero, so the block
 * starts as the identity. hidden [B, T, dim] -> [B, T, dim].
 */
export class GatedCrossAttentionBlock extends Module {
  /** Width of the residual stream. */
  readonly dim: number;
  /** Key of the forward context that holds this block's {@link CrossAttentionContext}. */
  readonly contextKey: string;
  /** The KV cache's static slot for the media keys/values during generation. */
  readonly cacheSlot: number;
  /** Whether the feed-forward is also zeroed at positions without media (Llama 3.2). */
  readonly maskFeedForward: boolean;
  /** Norm before the cross-attention. */
  readonly attn_norm: LayerNorm | RMSNorm;
  /** Cross-attention from text positions to the media tokens. */
  readonly attn: Attention;
  /** Gate [1] of the cross-attention term (applied through tanh), zero at init. */
  readonly attn_gate: tf.Variable; // [1]
  /** Norm before the feed-forward. */
  readonly ff_norm: LayerNorm | RMSNorm;
  /** The feed-forward block. */
  readonly ff: MLP;
  /** Gate [1] of the feed-forward term (applied through tanh), zero at init. */
  readonly ff_gate: tf.Variable; // [1]

  constructor(options: GatedCrossAttentionOptions) {
    super();
    const { dim, kvDim, numHeads } = options;
    const norm = options.norm ?? 'layer';
    if (norm !== 'layer' && norm !== 'rms') throw new Error(`GatedCrossAttentionBlock: norm must be 'layer' or 'rms', got '${norm as string}'`);
    const makeNorm = () => (norm === 'layer' ? new LayerNorm(dim) : new RMSNorm(dim));
    this.dim = dim;
    this.contextKey = options.contextKey;
    this.cacheSlot = options.cacheSlot;
    this.maskFeedForward = options.maskFeedForward ?? false;
    this.attn_norm = this.addModule('attn_norm', makeNorm());
    this.attn = this.addModule(
      'attn',
      new Attention({ dim, numHeads, numKvHeads: options.numKvHeads, headDim: options.headDim, kvInputDim: kvDim }),
    );
    this.attn_gate = this.addParameter('attn_gate', tf.zeros([1]));
    this.ff_norm = this.addModule('ff_norm', makeNorm());
    this.ff = this.addModule('ff', new MLP(dim, dim * (options.ffMult ?? 4), { activation: 'gelu', bias: false }));
    this.ff_gate = this.addParameter('ff_gate', tf.zeros([1]));
  }

  /** hidden [B, T, dim] -> [B, T, dim]; `ctx.context[contextKey]` holds the media (see CrossAttentionContext). */
  forward(hidden: tf.Tensor, ctx: BlockContext): tf.Tensor {
    const entry = readContext(ctx.context, this.contextKey);
    const [batch, length] = hidden.shape as [number, number, number];
    const rows = entry.bias.shape[2]!;
    const K = entry.media.shape[1]!;
    if (entry.media.rank !== 3 || entry.media.shape[0] !== batch || entry.bias.rank !== 4 || entry.bias.shape[0] !== batch || entry.bias.shape[3] !== K) {
      throw new Error(
        `GatedCrossAttentionBlock: context '${this.contextKey}' must hold media [${batch}, K, D] and bias [${batch}, 1, rows, K], ` +
          `got media [${entry.media.shape}] and bias [${entry.bias.shape}]`,
      );
    }
    return tf.tidy(() => {
      const bias = selectRows(entry.bias, 2, ctx.pastLength, length, rows); // [B, 1, T, K]
      const hasMedia = tf.expandDims(selectRows(entry.hasMedia, 1, ctx.pastLength, length, rows), 2); // [B, T, 1]
      const cache = ctx.cache ?? undefined;
      const attended = this.attn.forward(this.attn_norm.forward(hidden), {
        context: entry.media,
        bias,
        cache,
        layer: cache ? this.cacheSlot : undefined,
      });
      const h = tf.add(hidden, tf.mul(tf.tanh(this.attn_gate), tf.mul(attended, hasMedia)));
      let ffOut = this.ff.forward(this.ff_norm.forward(h));
      if (this.maskFeedForward) ffOut = tf.mul(ffOut, hasMedia);
      return tf.add(h, tf.mul(tf.tanh(this.ff_gate), ffOut));
    });
  }
}

function readContext(context: Readonly<Record<string, unknown>>, key: string): CrossAttentionContext {
  const entry = context[key] as Partial<CrossAttentionContext> | undefined;
  if (!entry || !(entry.media instanceof tf.Tensor) || !(entry.bias instanceof tf.Tensor) || !(entry.hasMedia instanceof tf.Tensor)) {
    throw new Error(
      `GatedCrossAttentionBlock: the forward context has no '${key}' entry with media, bias and hasMedia tensors ` +
        `(got ${entry === undefined ? 'nothing' : 'an incomplete entry'}). Run the model through ComposedModel ` +
        '(forward / loss / generate), which builds it from the packed batch.',
    );
  }
  return entry as CrossAttentionContext;
}

/**
 * Rows `pastLength .. pastLength + length - 1` of `mask` along `axis`, clamped to its last row: positions past
 * the prompt (generated tokens) reuse the mask's last row.
 */
function selectRows(mask: tf.Tensor, axis: number, pastLength: number, length: number, rows: number): tf.Tensor {
  if (pastLength === 0 && length === rows) return mask;
  const index = Int32Array.from({ length }, (_, t) => Math.min(pastLength + t, rows - 1));
  return tf.gather(mask, tf.tensor1d(index, 'int32'), axis);
}
