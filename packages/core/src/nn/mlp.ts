/**
 * Feed-forward blocks. MLP is the transformer FFN of Vaswani et al. 2017 with CLIP/ViT names (fc1, fc2);
 * GatedMLP is SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer") with Llama names
 * (gate_proj, up_proj, down_proj).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { Linear } from './linear';
import { getActivation, type ActivationFn, type ActivationName } from './activations';

/** Construction options of {@link MLP}. */
export interface MLPOptions {
  /** Activation name as in model configs, or a function (default 'gelu'). */
  activation?: ActivationName | string | ActivationFn;
  /** Biases on both projections (default true). */
  bias?: boolean;
  /** Output width (default: the input width). */
  outDim?: number;
}

/** act(x W1 + b1) W2 + b2. */
export class MLP extends Module {
  /** First projection [dim, hiddenDim]. */
  readonly fc1: Linear;
  /** Second projection [hiddenDim, outDim]. */
  readonly fc2: Linear;
  private readonly act: ActivationFn;

  constructor(dim: number, hiddenDim: number, options: MLPOptions = {}) {
    super();
    const bias = options.bias ?? true;
    this.act = getActivation(options.activation ?? 'gelu');
    this.fc1 = this.addModule('fc1', new Linear(dim, hiddenDim, { bias }));
    this.fc2 = this.addModule('fc2', new Linear(hiddenDim, options.outDim ?? dim, { bias }));
  }

  /** x: [..., dim] -> [..., outDim]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }
}

/** Construction options of {@link GatedMLP}. */
export interface GatedMLPOptions {
  /** Activation applied to the gate (default 'silu', i.e. SwiGLU). */
  activation?: ActivationName | string | ActivationFn;
  /** Biases on the three projections (default false, as in Llama). */
  bias?: boolean;
  /** Output width (default: the input width). */
  outDim?: number;
}

/** down(act(gate(x)) * up(x)). */
export class GatedMLP extends Module {
  /** Gate projection `gate_proj` [dim, hiddenDim]. */
  readonly gateProj: Linear;
  /** Up projection `up_proj` [dim, hiddenDim]. */
  readonly upProj: Linear;
  /** Down projection `down_proj` [hiddenDim, outDim]. */
  readonly downProj: Linear;
  private readonly act: ActivationFn;

  constructor(dim: number, hiddenDim: number, options: GatedMLPOptions = {}) {
    super();
    const bias = options.bias ?? false;
    this.act = getActivation(options.activation ?? 'silu');
    this.gateProj = this.addModule('gate_proj', new Linear(dim, hiddenDim, { bias }));
    this.upProj = this.addModule('up_proj', new Linear(dim, hiddenDim, { bias }));
    this.downProj = this.addModule('down_proj', new Linear(hiddenDim, options.outDim ?? dim, { bias }));
  }

  /** x: [..., dim] -> [..., outDim]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.downProj.forward(tf.mul(this.act(this.gateProj.forward(x)), this.upProj.forward(x))));
  }
}
