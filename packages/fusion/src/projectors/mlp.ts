/**
 * The MLP projector `mlp{N}x_gelu`: N Linear layers with exact GELU between them; `mlp2x_gelu` is LLaVA-1.5's
 * Linear, GELU, Linear (Liu et al. 2023, "Improved Baselines with Visual Instruction Tuning"). Layers are named
 * `linear_1`, `linear_2`, ... like HF's LlavaMultiModalProjector.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, gelu } from '@chimera/core';

/**
 * The `mlp{N}x_gelu` projector: N Linears with exact GELU between them (LLaVA-1.5's is N = 2), named `linear_1`,
 * `linear_2`, ... as HF's LlavaMultiModalProjector.
 */
export class MLPProjector extends Module {
  /** Feature width in. */
  readonly inputDim: number;
  /** Width out (the LLM's). */
  readonly outputDim: number;
  /** The Linear layers, in order. */
  readonly linears: Linear[];

  /** `depth` Linear layers (>= 2): inputDim -> outputDim, then outputDim -> outputDim. */
  constructor(inputDim: number, outputDim: number, depth = 2) {
    super();
    if (!(Number.isInteger(depth) && depth >= 2)) {
      throw new Error(`MLPProjector: depth must be an integer >= 2 (mlp2x_gelu has 2 layers), got ${depth}`);
    }
    this.inputDim = inputDim;
    this.outputDim = outputDim;
    this.linears = Array.from({ length: depth }, (_, i) =>
      this.addModule(`linear_${i + 1}`, new Linear(i === 0 ? inputDim : outputDim, outputDim)),
    );
  }

  /** features [..., inputDim] -> [..., outputDim]. */
  forward(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let x = this.linears[0]!.forward(features);
      for (const linear of this.linears.slice(1)) x = linear.forward(gelu(x));
      return x;
    });
  }
}
