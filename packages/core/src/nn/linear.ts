/**
 * Linear layer. The weight is stored [in, out] so the forward pass is a plain matMul: on wasm the
 * transpose-flag matMul is ~10x slower (ENGINE.md). PyTorch checkpoints ([out, in]) are transposed at load.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { fanInUniform } from './init';

export interface LinearOptions {
  bias?: boolean;
  /** Initial weight [in, out]; defaults to PyTorch's U(-1/sqrt(in), 1/sqrt(in)). */
  weightInit?: tf.Tensor;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: tf.Variable; // [in, out]
  readonly bias: tf.Variable | null; // [out]

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const init = options.weightInit ?? fanInUniform([inFeatures, outFeatures], inFeatures);
    if (init.shape.length !== 2 || init.shape[0] !== inFeatures || init.shape[1] !== outFeatures) {
      throw new Error(`Linear: weightInit must be [${inFeatures}, ${outFeatures}], got [${init.shape}]`);
    }
    this.weight = this.addParameter('weight', init);
    this.bias = options.bias === false ? null : this.addParameter('bias', fanInUniform([outFeatures], inFeatures));
  }

  /** x: [..., in] -> [..., out]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lastDim = x.shape[x.rank - 1];
      if (lastDim !== this.inFeatures) {
        throw new Error(`Linear: expected last dimension ${this.inFeatures}, got input of shape [${x.shape}]`);
      }
      const flat = x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures]);
      let y = tf.matMul(flat as tf.Tensor2D, this.weight as tf.Tensor2D);
      if (this.bias) y = tf.add(y, this.bias);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }
}
