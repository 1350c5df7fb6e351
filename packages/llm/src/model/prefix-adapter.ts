/**
 * A per-layer prefix adapter, LLaMA-Adapter (Zhang et al. 2023, "LLaMA-Adapter: Efficient Fine-tuning of Language
 * Models with Zero-init Attention"): `length` learnable prompt vectors, projected by the layer's own k_proj / v_proj
 * into keys and values that the layer's queries attend through a separate softmax; the result is scaled by a
 * zero-initialised per-head gate and added to the attention output (core's Attention `adapter` option). With the
 * gate at zero the layer is exactly the plain one, so training starts from the frozen LLM. v1's multimodal variant
 * adds a visual feature to every prompt: set `conditionKey` and pass the features in the forward context.
 *
 * Parameters: `prompts` [length, D] and `gate` [numHeads], under `model.layers.{i}.prefix_adapter`.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, init, type Attention, type AttentionAdapter } from '@chimera/core';
import type { PrefixAdapterOptions } from './extension-points';

/**
 * A LLaMA-Adapter prefix for one layer: `prompts` [length, D] projected by the layer's own k/v projections and
 * attended through a separate softmax, scaled by a zero-initialised per-head `gate` [numHeads], so at init the layer
 * equals the plain one.
 */
export class PrefixAdapter extends Module {
  /** Prompt vectors. */
  readonly length: number;
  /** Width D of each prompt. */
  readonly dim: number;
  /** Context key of the visual feature added to every prompt (LLaMA-Adapter v1's multimodal variant), or null. */
  readonly conditionKey: string | null;
  /** How the gate scales the prefix term: as is ('linear') or tanh(gate). */
  readonly gateActivation: 'linear' | 'tanh';
  /** Learnable prompts [length, D]. */
  readonly prompts: tf.Variable; // [length, D]
  /** Per-head gate [numHeads], zeros at init. */
  readonly gate: tf.Variable; // [numHeads]

  constructor(dim: number, numHeads: number, options: PrefixAdapterOptions) {
    super();
    const { length } = options;
    if (!(Number.isInteger(length) && length >= 1)) {
      throw new Error(`PrefixAdapter: length must be a positive integer (prompt tokens per layer), got ${length}`);
    }
    const activation = options.gateActivation ?? 'linear';
    if (activation !== 'linear' && activation !== 'tanh') {
      throw new Error(`PrefixAdapter: gateActivation must be 'linear' or 'tanh', got '${activation as string}'`);
    }
    this.length = length;
    this.dim = dim;
    this.conditionKey = options.conditionKey ?? null;
    this.gateActivation = activation;
    this.prompts = this.addParameter('prompts', init.normal([length, dim], options.initStd ?? 0.02));
    this.gate = this.addParameter('gate', tf.zeros([numHeads]));
  }

  /**
   * The prefix keys/values/gate for `attention` (whose projections and QK-norm turn prompts into keys), for a
   * batch of `batch` rows. Reads `context[conditionKey]` when set. Call inside a tf.tidy (the forward's).
   */
  attentionAdapter(attention: Attention, batch: number, context: Readonly<Record<string, unknown>>): AttentionAdapter {
    let prompts: tf.Tensor = tf.expandDims(this.prompts, 0); // [1, P, D]
    if (this.conditionKey !== null) prompts = tf.add(prompts, this.condition(context, batch)); // [B, P, D]
    const rows = prompts.shape[0]!;
    const { numKvHeads, headDim } = attention;
    const toHeads = (projected: tf.Tensor, norm: Attention['k_norm']) => {
      let perHead = tf.reshape(projected, [rows, this.length, numKvHeads, headDim]);
      if (norm) perHead = norm.forward(perHead);
      return tf.transpose(perHead, [0, 2, 1, 3]); // [rows, Hkv, P, Dh]
    };
    return {
      keys: toHeads(attention.k_proj.forward(prompts), attention.k_norm),
      values: toHeads(attention.v_proj.forward(prompts), null),
      gate: this.gateActivation === 'tanh' ? tf.tanh(this.gate) : this.gate,
    };
  }

  private condition(context: Readonly<Record<string, unknown>>, batch: number): tf.Tensor {
    const key = this.conditionKey!;
    const feature = context[key];
    if (!(feature instanceof tf.Tensor)) {
      throw new Error(
        `PrefixAdapter: conditionKey '${key}' needs a tensor [${batch}, ${this.dim}] or [${batch}, ${this.length}, ${this.dim}] ` +
          `in the forward context (forward({ ..., context: { ${key}: features } })), got ${feature === undefined ? 'nothing' : typeof feature}`,
      );
    }
    const ok =
      feature.shape[0] === batch &&
      feature.shape[feature.rank - 1] === this.dim &&
      (feature.rank === 2 || (feature.rank === 3 && feature.shape[1] === this.length));
    if (!ok) {
      throw new Error(
        `PrefixAdapter: context '${key}' must be [${batch}, ${this.dim}] or [${batch}, ${this.length}, ${this.dim}], ` +
          `got [${feature.shape}]; project the features to the model width first`,
      );
    }
    return feature.rank === 2 ? tf.expandDims(feature, 1) : feature;
  }
}
