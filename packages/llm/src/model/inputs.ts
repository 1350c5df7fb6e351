/**
 * The inputs of a decoder forward call, checked with clear errors, and their defaults: positions counted from
 * the cache length (or, with a padding mask, from each row's first real token, so left-padded prompts get the
 * positions they would have alone), and the causal + padding attention bias.
 */
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE, causalBias, type KVCache } from '@chimera/core';

/**
 * The inputs of one forward call: ids or embeddings, and optionally positions, padding, attention bias, routing,
 * cache and context.
 */
export interface CausalLMInputs {
  /** int32 [B, T] token ids. Give exactly one of inputIds and inputsEmbeds. */
  inputIds?: tf.Tensor;
  /** float32 [B, T, D] embeddings (e.g. text embeddings with image features spliced in). */
  inputsEmbeds?: tf.Tensor;
  /**
   * int32 [B, T], or [A, B, T] with A = mropeSections.length (M-RoPE). Default: sequential from the cache
   * length; with a paddingMask, counted over real tokens only (a left-padded row's first real token gets 0).
   */
  positions?: tf.Tensor;
  /**
   * [B, S] with S = cached + new tokens (HF's attention_mask): 1 real, 0 padding. Combined with the causal mask.
   * During cached decoding pass the mask of the whole sequence so far, not just the new tokens.
   */
  paddingMask?: tf.Tensor;
  /**
   * Additive bias [B or 1, 1 or H, T, S] (0 attend, MASK_VALUE not) replacing the default causal + padding bias,
   * e.g. a SequenceBatch's attentionBias (prefix-LM, bidirectional media blocks). Include causality in it.
   */
  attentionBias?: tf.Tensor;
  /** int32 [B, T]: the modality of each new token (routing; 0 = text). Default: all 0. */
  tokenModality?: tf.Tensor;
  /** A cache from `model.createCache(batch)`; this call appends its tokens to it. */
  cache?: KVCache;
  /** Opaque record handed to inserted blocks and prefix adapters (media features, cross-attention masks, ...). */
  context?: Record<string, unknown>;
}

/** Checks positions [B, T] or [A, B, T] against the batch and the RoPE axes. */
export function checkPositions(positions: tf.Tensor, batch: number, length: number, axes: number): void {
  const shape = positions.shape;
  const ok2 = positions.rank === 2 && shape[0] === batch && shape[1] === length;
  const ok3 = positions.rank === 3 && shape[1] === batch && shape[2] === length && shape[0] === axes && axes > 1;
  if (!(ok2 || ok3) || (positions.dtype !== 'int32' && positions.dtype !== 'float32')) {
    const expected = axes > 1 ? `[${batch}, ${length}] or [${axes}, ${batch}, ${length}] (M-RoPE)` : `[${batch}, ${length}]`;
    const hint = positions.rank === 3 && axes === 1 ? '; 3-D positions need a config with mropeSections' : '';
    throw new Error(`CausalLM: positions must be int32 ${expected}, got ${positions.dtype} [${shape}]${hint}`);
  }
}

/** Checks a padding mask [B, pastLength + T] and returns it as float32 (caller's tf scope). */
export function checkPaddingMask(mask: tf.Tensor, batch: number, length: number, pastLength: number): tf.Tensor {
  const keyLength = pastLength + length;
  if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== keyLength) {
    const hint = pastLength > 0 ? ` (${pastLength} cached + ${length} new tokens: pass the mask of the whole sequence so far)` : '';
    throw new Error(`CausalLM: paddingMask must be [${batch}, ${keyLength}]${hint}, got [${mask.shape}]`);
  }
  return mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
}

/** Checks a caller-supplied attention bias against [B, H, T, S]. */
export function checkAttentionBias(bias: tf.Tensor, batch: number, heads: number, length: number, keyLength: number): void {
  const target = [batch, heads, length, keyLength];
  const ok = bias.rank === 4 && bias.shape.every((d, i) => d === target[i] || (d === 1 && i < 2));
  if (!ok) {
    throw new Error(
      `CausalLM: attentionBias must be [${batch} or 1, 1 or ${heads}, ${length}, ${keyLength}] (S = cached + new tokens), ` +
        `got [${bias.shape}]`,
    );
  }
}

/**
 * Default positions int32 [B, T]: pastLength, pastLength+1, ... without a mask; with a mask [B, S], the number
 * of real tokens before each position (HF's cumsum(mask) - 1); padding positions are arbitrary (>= 0), they are masked.
 */
export function defaultPositions(paddingMask: tf.Tensor | null, batch: number, length: number, pastLength: number): tf.Tensor {
  return tf.tidy(() => {
    if (!paddingMask) return tf.tile(tf.expandDims(tf.range(pastLength, pastLength + length, 1, 'int32'), 0), [batch, 1]);
    const counted = tf.maximum(tf.sub(tf.cumsum(paddingMask, 1), 1), 0); // [B, S]
    return tf.cast(tf.slice(counted, [0, pastLength], [batch, length]), 'int32');
  });
}

/** Causal + padding bias [B, 1, T, S]: a query sees real keys at or before its own position. */
export function paddingBias(paddingMask: tf.Tensor, length: number, pastLength: number): tf.Tensor {
  return tf.tidy(() => {
    const [batch, keyLength] = paddingMask.shape as [number, number];
    const causal = causalBias(length, keyLength, pastLength); // [T, S]
    const padding = tf.reshape(tf.mul(tf.sub(1, paddingMask), MASK_VALUE), [batch, 1, 1, keyLength]);
    return tf.maximum(tf.add(causal, padding), MASK_VALUE);
  });
}
