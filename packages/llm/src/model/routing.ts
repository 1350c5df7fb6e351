/**
 * Per-token routing by tokenModality, the mechanism behind Mixture-of-Transformers (Liang et al. 2024), CogVLM's
 * visual expert (Wang et al. 2023) and X-Fusion's dual tower. `TokenRouting` groups the flat token rows of a
 * batch by modality once per forward call; `route` sends each group through its own weights and puts the rows
 * back in place (gather by group, apply, concat, gather by the inverse permutation), so a token costs one expert
 * and gradients flow to exactly the weights it used. `ModalityExperts` holds the per-modality copies of a layer.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type Attention, type GatedMLP, type RMSNorm } from '@chimera/core';

/**
 * The flat token rows of one forward call grouped by modality (from tokenModality), so each group runs through its
 * own weights and the rows go back in place.
 */
export class TokenRouting {
  /** Rows B of the call. */
  readonly batch: number;
  /** Tokens T per row. */
  readonly length: number;
  /** Modalities present in this call, ascending. */
  readonly present: readonly number[];
  /** Flat row indices (b * T + t) of each present modality. */
  private readonly rows: Map<number, tf.Tensor1D>;
  /** Position of each flat row in the grouped order (modality 0's rows first, then 1's, ...). */
  private readonly inverse: tf.Tensor1D | null;

  private constructor(batch: number, length: number, groups: Map<number, number[]>) {
    this.batch = batch;
    this.length = length;
    this.present = [...groups.keys()].sort((a, b) => a - b);
    this.rows = new Map();
    if (this.present.length === 1) {
      this.inverse = null;
      return;
    }
    const inverse = new Int32Array(batch * length);
    let offset = 0;
    for (const k of this.present) {
      const indices = groups.get(k)!;
      indices.forEach((row, i) => (inverse[row] = offset + i));
      offset += indices.length;
      this.rows.set(k, tf.tensor1d(indices, 'int32'));
    }
    this.inverse = tf.tensor1d(inverse, 'int32');
  }

  /** Every token of modality 0 (no tokenModality given). Holds no tensors. */
  static allText(batch: number, length: number): TokenRouting {
    return new TokenRouting(batch, length, new Map([[0, []]]));
  }

  /**
   * Groups tokenModality int32 [B, T]. The index tensors are made in the caller's tf scope (a forward's tidy
   * frees them). Values must lie in [0, maxModalities).
   */
  static fromTokenModality(tokenModality: tf.Tensor, batch: number, length: number, maxModalities: number): TokenRouting {
    if (tokenModality.dtype !== 'int32' || tokenModality.rank !== 2 || tokenModality.shape[0] !== batch || tokenModality.shape[1] !== length) {
      throw new Error(
        `CausalLM: tokenModality must be int32 [${batch}, ${length}] (one modality per new token), got ${tokenModality.dtype} ` +
          `[${tokenModality.shape}]`,
      );
    }
    const values = tokenModality.dataSync();
    const groups = new Map<number, number[]>();
    for (let i = 0; i < values.length; i++) {
      const k = values[i]!;
      if (!(k >= 0 && k < maxModalities)) {
        throw new Error(
          `CausalLM: tokenModality ${k} at row ${Math.floor(i / length)}, position ${i % length} is outside [0, ${maxModalities}); ` +
            `the model routes ${maxModalities} modalities (routeByModality({ numModalities }))`,
        );
      }
      let group = groups.get(k);
      if (!group) groups.set(k, (group = []));
      group.push(i);
    }
    return new TokenRouting(batch, length, groups);
  }

  /** True when every token belongs to modality `k`. */
  only(k: number): boolean {
    return this.present.length === 1 && this.present[0] === k;
  }

  /** Throws unless every modality present is one a layer with `numModalities` experts can route. */
  assertRoutable(numModalities: number, layer: number): void {
    const max = this.present[this.present.length - 1]!;
    if (max >= numModalities) {
      throw new Error(
        `CausalLM: tokenModality contains ${max}, but layer ${layer} routes only ${numModalities} modalities ` +
          `(0 .. ${numModalities - 1}); route it with a larger numModalities or fix tokenModality`,
      );
    }
  }

  /**
   * x [B, T, ...] -> [B, T, ...out]: each token's row goes through `fn(k, rows)` of its modality k, where rows are
   * [n_k, ...] (all B*T rows when one modality is present).
   */
  route(x: tf.Tensor, fn: (modality: number, rows: tf.Tensor) => tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const flat = tf.reshape(x, [this.batch * this.length, ...x.shape.slice(2)]);
      if (this.inverse === null) return this.unflatten(fn(this.present[0]!, flat));
      const grouped = this.present.map((k) => fn(k, tf.gather(flat, this.rows.get(k)!)));
      return this.unflatten(tf.gather(tf.concat(grouped, 0), this.inverse));
    });
  }

  /** Each token's row from its own modality's full output: `full(k)` is [B, T, ...] for every present k. */
  select(full: (modality: number) => tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      if (this.inverse === null) return full(this.present[0]!);
      const grouped = this.present.map((k) => {
        const out = full(k);
        return tf.gather(tf.reshape(out, [this.batch * this.length, ...out.shape.slice(2)]), this.rows.get(k)!);
      });
      return this.unflatten(tf.gather(tf.concat(grouped, 0), this.inverse));
    });
  }

  private unflatten(rows: tf.Tensor): tf.Tensor {
    return tf.reshape(rows, [this.batch, this.length, ...rows.shape.slice(1)]);
  }
}

/** Modality k's copy of the routed parts of one decoder layer (only the parts routed are present). */
export class ExpertParts extends Module {
  /** Modality k's input norm, or null when norms are not routed. */
  readonly input_layernorm: RMSNorm | null;
  /** Modality k's attention, or null when attention is not routed. */
  readonly self_attn: Attention | null;
  /** Modality k's post-attention norm, or null when norms are not routed. */
  readonly post_attention_layernorm: RMSNorm | null;
  /** Modality k's MLP, or null when the MLP is not routed. */
  readonly mlp: GatedMLP | null;

  constructor(parts: {
    input_layernorm?: RMSNorm;
    self_attn?: Attention;
    post_attention_layernorm?: RMSNorm;
    mlp?: GatedMLP;
  }) {
    super();
    // Registered in the order of the layer's own children so state dicts read alike.
    this.input_layernorm = parts.input_layernorm ? this.addModule('input_layernorm', parts.input_layernorm) : null;
    this.self_attn = parts.self_attn ? this.addModule('self_attn', parts.self_attn) : null;
    this.post_attention_layernorm = parts.post_attention_layernorm
      ? this.addModule('post_attention_layernorm', parts.post_attention_layernorm)
      : null;
    this.mlp = parts.mlp ? this.addModule('mlp', parts.mlp) : null;
  }
}

/** The experts of modalities 1 .. n-1, named by modality (`experts.1.mlp.up_proj.weight`); modality 0 is the layer itself. */
export class ModalityExperts extends Module {
  private readonly byModality: ExpertParts[];

  constructor(experts: ExpertParts[]) {
    super();
    this.byModality = experts;
    experts.forEach((expert, i) => this.addModule(String(i + 1), expert));
  }

  /** Modality k >= 1's parts. */
  get(k: number): ExpertParts {
    const expert = this.byModality[k - 1];
    if (!expert) throw new Error(`ModalityExperts: no expert for modality ${k} (have 1 .. ${this.byModality.length})`);
    return expert;
  }
}
