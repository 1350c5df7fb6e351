/**
 * Self-attention whose projections are routed per token (Mixture-of-Transformers, Liang et al. 2024; CogVLM's
 * visual expert): every token's q/k/v/o (and QK-norm) use its own modality's weights, while one softmax runs
 * over all tokens (core's attendHeads, the same arithmetic as Attention.forward: with expert weights equal to
 * the base ones, the output is bitwise the plain layer's).
 */
import * as tf from '@tensorflow/tfjs';
import {
  applyRotary,
  attendHeads,
  type Attention,
  type AttentionAdapter,
  type KVCache,
  type RotaryTables,
} from '@chimera/core';
import type { TokenRouting } from './routing';

export interface RoutedAttentionOptions {
  /** Additive bias [B, 1|H, T, S]; when absent the causal mask is applied (as core's causal Attention does). */
  bias: tf.Tensor | null;
  rotary: RotaryTables;
  cache: KVCache | null;
  /** The cache slot of this layer. */
  slot: number;
  adapter: AttentionAdapter | null;
}

/**
 * x [B, T, D] (already normed, or raw when `preNorm` routes the norm too) -> [B, T, D]. `attention(k)` is
 * modality k's Attention; `preNorm(k)` optionally normalises the token rows first (routed input_layernorm).
 */
export function routedSelfAttention(
  routing: TokenRouting,
  attention: (modality: number) => Attention,
  x: tf.Tensor,
  options: RoutedAttentionOptions,
  preNorm: ((modality: number, rows: tf.Tensor) => tf.Tensor) | null = null,
): tf.Tensor {
  return tf.tidy(() => {
    const base = attention(0);
    const { numHeads: heads, numKvHeads: kvHeads, headDim } = base;
    const [batch, length] = x.shape as [number, number, number];
    const { bias, rotary, cache, slot, adapter } = options;
    if (cache) cache.assertCompatible({ numKvHeads: kvHeads, headDim, batch, layer: slot });

    // One routed pass computes every token's q | k | v with its modality's projections and QK-norms.
    const qWidth = heads * headDim;
    const kvWidth = kvHeads * headDim;
    const projected = routing.route(x, (k, rows) => {
      const attn = attention(k);
      const input = preNorm ? preNorm(k, rows) : rows;
      const n = rows.shape[0]!;
      const perHead = (proj: tf.Tensor, count: number, norm: Attention['q_norm']) => {
        const split = tf.reshape(proj, [n, count, headDim]);
        return tf.reshape(norm ? norm.forward(split) : split, [n, count * headDim]);
      };
      return tf.concat(
        [
          perHead(attn.q_proj.forward(input), heads, attn.q_norm),
          perHead(attn.k_proj.forward(input), kvHeads, attn.k_norm),
          perHead(attn.v_proj.forward(input), kvHeads, null),
        ],
        -1,
      );
    });
    const [qFlat, kFlat, vFlat] = tf.split(projected, [qWidth, kvWidth, kvWidth], -1);
    const toHeads = (t: tf.Tensor, count: number) => tf.transpose(tf.reshape(t, [batch, length, count, headDim]), [0, 2, 1, 3]);
    let q = toHeads(qFlat!, heads); // [B, H, T, Dh]
    let keys = toHeads(kFlat!, kvHeads); // [B, Hkv, T, Dh]
    let values = toHeads(vFlat!, kvHeads);
    q = applyRotary(q, rotary.cos, rotary.sin);
    keys = applyRotary(keys, rotary.cos, rotary.sin);
    let pastLength = 0;
    if (cache) {
      pastLength = cache.layerLength(slot);
      ({ keys, values } = cache.append(slot, keys, values));
    }
    // Routed projections done; the attention itself is core's, so fresh experts give the plain layer's output.
    const mixed = attendHeads(q, keys, values, { bias, causal: true, pastLength, adapter });
    const merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [batch, length, heads * headDim]);
    return routing.route(merged, (k, rows) => attention(k).o_proj.forward(rows));
  });
}
