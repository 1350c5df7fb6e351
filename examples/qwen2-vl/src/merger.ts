/**
 * Qwen2-VL's patch merger (Wang et al. 2024, "Qwen2-VL"; HF's `PatchMerger`) as the early-fusion projector. The
 * vision plugin has already concatenated each 2x2 window of patch features into one token of 4*D channels (in
 * (dy, dx, d) order); the merger normalises every patch's D channels with one shared LayerNorm (`ln_q`), then
 * runs an MLP 4D -> 4D -> LLM width with exact GELU (`mlp.0`, `mlp.2`, named as HF's Sequential indices).
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, Linear, Module, gelu } from '@chimera/core';
import type { Projector } from '@chimera/fusion';

export class PatchMerger extends Module implements Projector {
  readonly inputDim: number;
  readonly outputDim: number;
  /** Width of one patch feature (the ViT's). */
  readonly patchDim: number;
  readonly ln_q: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  /** `inputDim` = window * window * patchDim (the plugin's featureDim), out to the LLM width. */
  constructor(inputDim: number, outputDim: number, window = 2) {
    super();
    if (inputDim % (window * window) !== 0) {
      throw new Error(`PatchMerger: the feature width ${inputDim} is not ${window * window} patch features; merge ${window}x${window} windows in the vision plugin`);
    }
    this.inputDim = inputDim;
    this.outputDim = outputDim;
    this.patchDim = inputDim / (window * window);
    this.ln_q = this.addModule('ln_q', new LayerNorm(this.patchDim, { eps: 1e-6 }));
    const mlp = this.addModule('mlp', new MergerMLP(inputDim, outputDim));
    this.fc1 = mlp.fc1;
    this.fc2 = mlp.fc2;
  }

  /** features [..., 4D] -> [..., outputDim]. */
  forward(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = features.shape;
      const patches = tf.reshape(features, [...shape.slice(0, -1), this.inputDim / this.patchDim, this.patchDim]); // [..., 4, D]
      const normed = tf.reshape(this.ln_q.forward(patches), shape); // [..., 4D]
      return this.fc2.forward(gelu(this.fc1.forward(normed)));
    });
  }
}

/** HF's `nn.Sequential(Linear, GELU, Linear)`: the Linears at indices 0 and 2 (the GELU, 1, has no weights). */
class MergerMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(inputDim: number, outputDim: number) {
    super();
    this.fc1 = this.addModule('0', new Linear(inputDim, inputDim));
    this.fc2 = this.addModule('2', new Linear(inputDim, outputDim));
  }
}

/** The early-fusion projector factory: `earlyFusion({ projector: patchMerger })`. */
export const patchMerger = (inputDim: number, outputDim: number): Projector => new PatchMerger(inputDim, outputDim);
