/**
 * Multi-head scaled dot-product attention (Vaswani et al. 2017) with grouped-query attention (Ainslie et al.
 * 2023), optional QK-norm (Qwen3 RMSNorm / Chameleon-style LayerNorm over the head dim), rotary positions,
 * cross-attention over a context of another width, a KV cache, and a gated prefix term (LLaMA-Adapter, Zhang et
 * al. 2023: extra keys/values attended by the same queries through their own softmax, scaled by a zero-initialised
 * gate). Parameter names follow HF Llama (q_proj, k_proj, v_proj, o_proj, q_norm, k_norm) so checkpoints map by rule.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Linear } from './linear';
import { LayerNorm, RMSNorm } from './norm';
import { applyRotary, type RotaryTables } from './rope';
import type { KVCache } from '../generation/kv-cache';

/** Additive value for masked positions. Finite, so a fully masked row averages instead of producing NaN. */
export const MASK_VALUE = -1e9;

/** Per-head query/key normalisation: RMSNorm ('rms', Qwen3) or LayerNorm ('layer', Chameleon). */
export type QKNormKind = 'rms' | 'layer';

/** Construction options of {@link Attention}. */
export interface AttentionOptions {
  /** Width of the input (and output) x. */
  dim: number;
  /** Query heads; `dim` (or `headDim`) sets each head's width. */
  numHeads: number;
  /** Key/value heads; fewer than numHeads is GQA (must divide it). Default numHeads (MHA). */
  numKvHeads?: number;
  /** Default dim / numHeads. */
  headDim?: number;
  /** Width of the cross-attention context fed to k_proj/v_proj. Default dim. */
  kvInputDim?: number;
  /** Biases on q/k/v projections (Qwen2). Default false. */
  qkvBias?: boolean;
  /**
   * Bias on k_proj alone (default qkvBias). Whisper has q and v biases but none on k: a key bias adds the same
   * q.b to every score of a query, which softmax ignores, so it is dropped rather than kept at zero.
   */
  keyBias?: boolean;
  /** Bias on o_proj. Default false. */
  outBias?: boolean;
  /** Mask future keys in self-attention when no explicit bias is given (decoders). Default false (encoders). */
  causal?: boolean;
  /** Normalise queries and keys per head before RoPE: 'rms' (Qwen3) or 'layer' (Chameleon). Default none. */
  qkNorm?: QKNormKind;
  /** Epsilon of the QK-norm (default 1e-6 for 'rms', 1e-5 for 'layer'). */
  qkNormEps?: number;
}

/** Per-call inputs of {@link Attention.forward}: cross-attention context, mask, rotary tables, cache and adapter. */
export interface AttentionForwardOptions {
  /** Cross-attention: keys/values come from this context [B, S, kvInputDim] instead of x. */
  context?: tf.Tensor;
  /**
   * Additive mask broadcastable to [B, H, T, S] (0 to keep, MASK_VALUE to drop; -Infinity is clamped to
   * MASK_VALUE). S counts cached keys too. Replaces the causal mask, so include causality in it if needed.
   */
  bias?: tf.Tensor;
  /** cos/sin [B, T, headDim] for the positions of x's tokens (self-attention only). */
  rotary?: RotaryTables;
  /** Self-attention: appends this step's keys/values. Cross-attention: computes the context's once, then reuses. */
  cache?: KVCache;
  /** This layer's index in `cache` (required with a cache). */
  layer?: number;
  /** A gated prefix (LLaMA-Adapter) whose term is added to the attention output before o_proj. */
  adapter?: AttentionAdapter;
}

/**
 * Prefix keys/values attended through a separate softmax (no mask, no positions), the result scaled by `gate`
 * and added to the heads' output. With a zero gate the layer's output is exactly the plain one.
 */
export interface AttentionAdapter {
  /** Shape [B or 1, Hkv, P, Dh]: already projected (and QK-normed if the layer norms keys); no RoPE. */
  keys: tf.Tensor;
  /** [B or 1, Hkv, P, Dh]. */
  values: tf.Tensor;
  /** One gate ([] or [1]) or one per query head ([H]), applied as given (apply tanh etc. before). */
  gate: tf.Tensor;
}

/**
 * Multi-head attention (MHA or GQA), self or cross, with optional QK-norm, rotary positions, KV cache and a gated
 * prefix adapter. Parameters are `q_proj`, `k_proj`, `v_proj`, `o_proj` (and `q_norm`, `k_norm`), HF Llama's names.
 */
export class Attention extends Module {
  /** Width of the input and output. */
  readonly dim: number;
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads (equal to numHeads for MHA, fewer for GQA). */
  readonly numKvHeads: number;
  /** Width of one head. */
  readonly headDim: number;
  /** Width of the context that keys and values are projected from (dim for self-attention). */
  readonly kvInputDim: number;
  /** Whether self-attention masks future keys when no bias is given. */
  readonly causal: boolean;
  /** Query projection [dim, numHeads * headDim]. */
  readonly q_proj: Linear;
  /** Key projection [kvInputDim, numKvHeads * headDim]. */
  readonly k_proj: Linear;
  /** Value projection [kvInputDim, numKvHeads * headDim]. */
  readonly v_proj: Linear;
  /** Output projection [numHeads * headDim, dim]. */
  readonly o_proj: Linear;
  /** Per-head query norm over headDim, or null without QK-norm. */
  readonly q_norm: RMSNorm | LayerNorm | null;
  /** Per-head key norm over headDim, or null without QK-norm. */
  readonly k_norm: RMSNorm | LayerNorm | null;

  constructor(options: AttentionOptions) {
    super();
    const { dim, numHeads } = options;
    const numKvHeads = options.numKvHeads ?? numHeads;
    if (!isPositiveInt(dim) || !isPositiveInt(numHeads) || !isPositiveInt(numKvHeads)) {
      throw new Error(`Attention: dim, numHeads, numKvHeads must be positive integers, got ${dim}, ${numHeads}, ${numKvHeads}`);
    }
    if (numHeads % numKvHeads !== 0) {
      throw new Error(`Attention: numHeads (${numHeads}) must be a multiple of numKvHeads (${numKvHeads}) for GQA`);
    }
    if (options.headDim === undefined && dim % numHeads !== 0) {
      throw new Error(`Attention: dim (${dim}) is not divisible by numHeads (${numHeads}); pass headDim explicitly`);
    }
    this.dim = dim;
    this.numHeads = numHeads;
    this.numKvHeads = numKvHeads;
    this.headDim = options.headDim ?? dim / numHeads;
    this.kvInputDim = options.kvInputDim ?? dim;
    this.causal = options.causal ?? false;
    const qkvBias = options.qkvBias ?? false;
    this.q_proj = this.addModule('q_proj', new Linear(dim, numHeads * this.headDim, { bias: qkvBias }));
    this.k_proj = this.addModule('k_proj', new Linear(this.kvInputDim, numKvHeads * this.headDim, { bias: options.keyBias ?? qkvBias }));
    this.v_proj = this.addModule('v_proj', new Linear(this.kvInputDim, numKvHeads * this.headDim, { bias: qkvBias }));
    this.o_proj = this.addModule('o_proj', new Linear(numHeads * this.headDim, dim, { bias: options.outBias ?? false }));
    const makeNorm = (): RMSNorm | LayerNorm | null => {
      if (options.qkNorm === undefined) return null;
      if (options.qkNorm === 'rms') return new RMSNorm(this.headDim, { eps: options.qkNormEps ?? 1e-6 });
      if (options.qkNorm === 'layer') return new LayerNorm(this.headDim, { eps: options.qkNormEps ?? 1e-5 });
      throw new Error(`Attention: qkNorm must be 'rms' or 'layer', got '${options.qkNorm as string}'`);
    };
    const qNorm = makeNorm();
    const kNorm = makeNorm();
    this.q_norm = qNorm ? this.addModule('q_norm', qNorm) : null;
    this.k_norm = kNorm ? this.addModule('k_norm', kNorm) : null;
  }

  /** x [B, T, dim] -> [B, T, dim]. */
  forward(x: tf.Tensor, options: AttentionForwardOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const { context, bias, rotary, cache, layer, adapter } = options;
      if (x.rank !== 3 || x.shape[2] !== this.dim) {
        throw new Error(`Attention: expected x [B, T, ${this.dim}], got shape [${x.shape}]`);
      }
      const [batch, length] = x.shape as [number, number, number];
      const heads = this.numHeads;
      if (cache) {
        if (layer === undefined) throw new Error('Attention: a cache needs the layer index (forward(x, { cache, layer }))');
        cache.assertCompatible({ numKvHeads: this.numKvHeads, headDim: this.headDim, batch, layer });
      }

      // q: [B, T, H, Dh] -> norm per head -> [B, H, T, Dh]
      let q = this.splitHeads(this.q_proj.forward(x), heads, this.q_norm);

      let keys: tf.Tensor; // [B, Hkv, S, Dh]
      let values: tf.Tensor;
      let pastLength = 0;
      if (context) {
        if (rotary) {
          throw new Error('Attention: rotary applies to self-attention; a cross-attention context has no query positions');
        }
        if (context.rank !== 3 || context.shape[0] !== batch || context.shape[2] !== this.kvInputDim) {
          throw new Error(`Attention: expected context [${batch}, S, ${this.kvInputDim}], got shape [${context.shape}]`);
        }
        const stored = cache?.getStatic(layer!);
        if (stored) {
          ({ keys, values } = stored);
        } else {
          ({ keys, values } = this.projectKeyValues(context));
          if (cache) ({ keys, values } = cache.setStatic(layer!, keys, values));
        }
      } else {
        ({ keys, values } = this.projectKeyValues(x));
        if (rotary && length === 1) {
          // One token (a decode step): queries and keys share the table and the rotation is per element, so one
          // pass over both heads' rows gives the same numbers with 6 fewer tensor ops (ops dominate a decode step).
          const both = applyRotary(tf.concat([q, keys], 1), rotary.cos, rotary.sin);
          [q, keys] = tf.split(both, [heads, this.numKvHeads], 1) as [tf.Tensor, tf.Tensor];
        } else if (rotary) {
          q = applyRotary(q, rotary.cos, rotary.sin);
          keys = applyRotary(keys, rotary.cos, rotary.sin);
        }
        if (cache) {
          pastLength = cache.layerLength(layer!);
          ({ keys, values } = cache.append(layer!, keys, values));
        }
      }
      const mixed = attendHeads(q, keys, values, { bias, causal: this.causal && !context, pastLength, adapter });
      // [B, H, T, Dh] -> [B, T, H*Dh]; with one token the transpose moves nothing, so a reshape does (no copy).
      const merged = tf.reshape(length === 1 ? mixed : tf.transpose(mixed, [0, 2, 1, 3]), [batch, length, heads * this.headDim]);
      return this.o_proj.forward(merged);
    });
  }

  private projectKeyValues(source: tf.Tensor): { keys: tf.Tensor; values: tf.Tensor } {
    return {
      keys: this.splitHeads(this.k_proj.forward(source), this.numKvHeads, this.k_norm),
      values: this.splitHeads(this.v_proj.forward(source), this.numKvHeads, null),
    };
  }

  /** [B, T, heads*Dh] -> (optional per-head norm) -> [B, heads, T, Dh]. */
  private splitHeads(projected: tf.Tensor, heads: number, norm: RMSNorm | LayerNorm | null): tf.Tensor {
    const [batch, length] = projected.shape as [number, number, number];
    let perHead = tf.reshape(projected, [batch, length, heads, this.headDim]);
    if (norm) perHead = norm.forward(perHead);
    // One token (a decode step): [B, 1, H, Dh] -> [B, H, 1, Dh] moves no data, so a reshape instead of a copy.
    return length === 1 ? tf.reshape(perHead, [batch, heads, 1, this.headDim]) : tf.transpose(perHead, [0, 2, 1, 3]);
  }
}

/** Options of {@link attendHeads}. */
export interface AttendHeadsOptions {
  /** Additive mask broadcastable to [B, H, T, S]; replaces the causal mask. */
  bias?: tf.Tensor | null;
  /** Mask future keys when no bias is given. */
  causal?: boolean;
  /** Cached keys before this step's (offsets the causal mask). */
  pastLength?: number;
  /** A gated prefix (LLaMA-Adapter) attended by the same queries through its own softmax. */
  adapter?: AttentionAdapter | null;
}

/**
 * Scaled dot-product attention over heads already split: q [B, H, T, Dh] (after RoPE), keys and values
 * [B, Hkv, S, Dh] -> [B, H, T, Dh]. Exported so layers with their own projections (per-modality routing)
 * share the exact same arithmetic as Attention.forward.
 */
export function attendHeads(q: tf.Tensor, keys: tf.Tensor, values: tf.Tensor, options: AttendHeadsOptions = {}): tf.Tensor {
  return tf.tidy(() => {
    const [batch, heads, length, headDim] = q.shape as [number, number, number, number];
    const kvHeads = keys.shape[1]!;
    const keyLength = keys.shape[2]!;
    const groups = heads / kvHeads;
    // GQA without copying K/V: the G query heads sharing one KV head are stacked along the row axis
    // ([B, H, T, Dh] -> [B, Hkv, G*T, Dh] is a free reshape since head h uses KV head floor(h / G)).
    const scaled = tf.mul(q, 1 / Math.sqrt(headDim));
    // One query row per KV head (a decode step without GQA): broadcast products and sums instead of batched
    // matMuls, which would transpose the whole key cache and run one XNNPACK product per head, each packing a fresh
    // [Dh, S] operand to multiply a single row (2x slower for the whole function at S = 32..512, 6 heads of 48).
    // With GQA's G rows per KV head the matMuls stay faster (measured: 0.3-1.1x for G = 3 and 7).
    const oneRow = groups * length === 1;
    let scores = oneRow
      ? tf.reshape(tf.sum(tf.mul(scaled, keys), -1), [batch, heads, 1, keyLength]) // [B, H, 1, Dh] * [B, H, S, Dh]
      : tf.reshape(
          tf.matMul(tf.reshape(scaled, [batch, kvHeads, groups * length, headDim]), tf.transpose(keys, [0, 1, 3, 2])),
          [batch, heads, length, keyLength],
        ); // [B, H, T, S]; the key transpose is explicit: no matMul transpose flag on wasm
    if (options.bias) {
      checkBias(options.bias, [batch, heads, length, keyLength]);
      scores = tf.add(scores, tf.maximum(options.bias, MASK_VALUE));
    } else if (options.causal && length > 1) {
      scores = tf.add(scores, causalBias(length, keyLength, options.pastLength ?? keyLength - length));
    }
    const probs = tf.softmax(scores, -1);
    const mixed = oneRow
      ? tf.reshape(tf.sum(tf.mul(tf.reshape(probs, [batch, heads, keyLength, 1]), values), 2), [batch, heads, 1, headDim])
      : tf.reshape(tf.matMul(tf.reshape(probs, [batch, kvHeads, groups * length, keyLength]), values), [batch, heads, length, headDim]);
    return options.adapter ? tf.add(mixed, gatedPrefixAttention(q, options.adapter)) : mixed;
  });
}

/**
 * The LLaMA-Adapter term for queries q [B, H, T, Dh] (after RoPE, unscaled): gate * softmax(q k^T / sqrt(Dh)) v
 * over the adapter's P prefix keys, as [B, H, T, Dh]. Query head h reads prefix head floor(h / (H / Hkv)).
 */
export function gatedPrefixAttention(q: tf.Tensor, adapter: AttentionAdapter): tf.Tensor {
  return tf.tidy(() => {
    const { keys, values, gate } = adapter;
    if (q.rank !== 4) throw new Error(`gatedPrefixAttention: queries must be [B, H, T, Dh], got shape [${q.shape}]`);
    const [batch, heads, length, headDim] = q.shape as [number, number, number, number];
    const kvHeads = keys.shape[1]!;
    const shapeOk = (t: tf.Tensor) =>
      t.rank === 4 && (t.shape[0] === batch || t.shape[0] === 1) && t.shape[1] === kvHeads && t.shape[3] === headDim;
    if (!shapeOk(keys) || !shapeOk(values) || keys.shape[2] !== values.shape[2] || heads % kvHeads !== 0) {
      throw new Error(
        `Attention adapter: expected keys and values [${batch} or 1, Hkv, P, ${headDim}] with Hkv dividing ${heads} ` +
          `query heads, got keys [${keys.shape}] and values [${values.shape}]; project the prompts with the layer's ` +
          'k_proj/v_proj and split them into key/value heads',
      );
    }
    if (gate.rank > 1 || (gate.size !== 1 && gate.size !== heads)) {
      throw new Error(`Attention adapter: gate must have shape [], [1] or [${heads}] (one per head), got [${gate.shape}]`);
    }
    const groups = heads / kvHeads;
    const prefix = keys.shape[2]!;
    const full = [batch, kvHeads, prefix, headDim];
    const k = keys.shape[0] === batch ? keys : tf.broadcastTo(keys, full);
    const v = values.shape[0] === batch ? values : tf.broadcastTo(values, full);
    const qGrouped = tf.reshape(tf.mul(q, 1 / Math.sqrt(headDim)), [batch, kvHeads, groups * length, headDim]);
    const probs = tf.softmax(tf.matMul(qGrouped, tf.transpose(k, [0, 1, 3, 2])), -1); // [B, Hkv, G*T, P]
    const mixed = tf.reshape(tf.matMul(probs, v), [batch, heads, length, headDim]);
    return tf.mul(mixed, gate.size === 1 ? tf.reshape(gate, []) : tf.reshape(gate, [1, heads, 1, 1]));
  });
}

/**
 * Causal additive mask [T, S] for T new queries after `pastLength` cached tokens: query i (absolute position
 * pastLength + i) sees keys 0..pastLength + i.
 */
export function causalBias(queryLength: number, keyLength: number, pastLength = keyLength - queryLength): tf.Tensor2D {
  const data = new Float32Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) {
    for (let j = pastLength + i + 1; j < keyLength; j++) data[i * keyLength + j] = MASK_VALUE;
  }
  return tf.tensor2d(data, [queryLength, keyLength]);
}

function checkBias(bias: tf.Tensor, target: [number, number, number, number]): void {
  const shape = bias.shape;
  const offset = target.length - shape.length;
  const ok = shape.length <= 4 && shape.every((d, i) => d === 1 || d === target[offset + i]);
  if (!ok) {
    throw new Error(
      `Attention: bias of shape [${shape}] does not broadcast to [B, H, T, S] = [${target}]; ` +
        'S counts cached keys plus the new ones (e.g. a [B, 1, T, S] mask built for the whole key range)',
    );
  }
}

function isPositiveInt(v: number): boolean {
  return Number.isInteger(v) && v > 0;
}
