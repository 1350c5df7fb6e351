/**
 * One Whisper encoder block (Radford et al. 2022; openai/whisper `ResidualAttentionBlock` without cross-attention,
 * HF `WhisperEncoderLayer`): pre-LN, x + attn(LN(x)), then x + fc2(gelu(fc1(LN(x)))). q, v and out projections
 * have biases, k_proj has none. Children and parameters carry HF's names (self_attn_layer_norm, self_attn,
 * final_layer_norm, fc1, fc2) except core's `o_proj` for HF's `out_proj` (the remap table maps it). Built from
 * core's Attention, LayerNorm and Linear, as vision-encoder's ViTBlock is.
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, LayerNorm, Linear, Module, getActivation, type ActivationFn } from '@chimera/core';
import type { WhisperEncoderConfig } from './config';

/**
 * One Whisper encoder block (HF `WhisperEncoderLayer`): pre-LN, x + attn(LN(x)), then x + fc2(gelu(fc1(LN(x)))), with
 * HF's child names (core's `o_proj` for HF's `out_proj`).
 */
export class WhisperEncoderLayer extends Module {
  /** LayerNorm before attention. */
  readonly self_attn_layer_norm: LayerNorm;
  /** Bidirectional self-attention (q, v and output biases; no k bias). */
  readonly self_attn: Attention;
  /** LayerNorm before the MLP. */
  readonly final_layer_norm: LayerNorm;
  /** MLP input projection [dModel, ffnDim]. */
  readonly fc1: Linear;
  /** MLP output projection [ffnDim, dModel]. */
  readonly fc2: Linear;
  private readonly act: ActivationFn;

  constructor(config: Pick<WhisperEncoderConfig, 'dModel' | 'numHeads' | 'ffnDim' | 'activation' | 'layerNormEps'>) {
    super();
    const { dModel: dim, layerNormEps: eps } = config;
    this.self_attn_layer_norm = this.addModule('self_attn_layer_norm', new LayerNorm(dim, { eps }));
    this.self_attn = this.addModule(
      'self_attn',
      new Attention({ dim, numHeads: config.numHeads, qkvBias: true, keyBias: false, outBias: true, causal: false }),
    );
    this.final_layer_norm = this.addModule('final_layer_norm', new LayerNorm(dim, { eps }));
    // fc1/fc2 sit directly on the layer (HF's names), so core's MLP (which nests them under `mlp.`) is not used.
    this.fc1 = this.addModule('fc1', new Linear(dim, config.ffnDim));
    this.fc2 = this.addModule('fc2', new Linear(config.ffnDim, dim));
    this.act = getActivation(config.activation);
  }

  /** x [B, T, D] -> [B, T, D]; `bias` an additive key mask broadcastable to [B, H, T, T] (padded frames). */
  forward(x: tf.Tensor3D, bias?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(x, this.self_attn.forward(this.self_attn_layer_norm.forward(x), bias ? { bias } : {}));
      const hidden = this.fc2.forward(this.act(this.fc1.forward(this.final_layer_norm.forward(attended))));
      return tf.add(attended, hidden) as tf.Tensor3D;
    });
  }
}
