/**
 * One pre-norm transformer encoder block (Vaswani et al. 2017 with the pre-LN placement of Xiong et al. 2020),
 * as in CLIP and SigLIP: x + attn(LN1(x)), then x + MLP(LN2(x)). Bidirectional attention with biases on every
 * projection. Children are named after HF's `encoder.layers.{i}` (layer_norm1, self_attn, layer_norm2, mlp);
 * the attention's output projection is core's `o_proj` (HF `out_proj`, mapped by the remap table).
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, LayerNorm, MLP, Module, type RotaryTables } from '@chimera/core';
import type { ViTConfig } from './config';

/**
 * One pre-norm encoder block as in CLIP and SigLIP: x + attn(LN1(x)), then x + MLP(LN2(x)), bidirectional, with HF's
 * child names.
 */
export class ViTBlock extends Module {
  /** LayerNorm before attention. */
  readonly layer_norm1: LayerNorm;
  /** Bidirectional self-attention (biases on every projection). */
  readonly self_attn: Attention;
  /** LayerNorm before the MLP. */
  readonly layer_norm2: LayerNorm;
  /** The feed-forward block (fc1, fc2). */
  readonly mlp: MLP;

  constructor(config: ViTConfig) {
    super();
    const eps = config.layerNormEps;
    this.layer_norm1 = this.addModule('layer_norm1', new LayerNorm(config.hiddenSize, { eps }));
    this.self_attn = this.addModule(
      'self_attn',
      new Attention({ dim: config.hiddenSize, numHeads: config.numHeads, qkvBias: true, outBias: true, causal: false }),
    );
    this.layer_norm2 = this.addModule('layer_norm2', new LayerNorm(config.hiddenSize, { eps }));
    this.mlp = this.addModule('mlp', new MLP(config.hiddenSize, config.intermediateSize, { activation: config.activation }));
  }

  /** x [B, T, D] -> [B, T, D]; `rotary` for 2-D RoPE towers. */
  forward(x: tf.Tensor3D, rotary?: RotaryTables): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(x, this.self_attn.forward(this.layer_norm1.forward(x), { rotary }));
      return tf.add(attended, this.mlp.forward(this.layer_norm2.forward(attended))) as tf.Tensor3D;
    });
  }
}
