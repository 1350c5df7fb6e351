/**
 * Linear layer. The weight is stored [in, out] so the forward pass is a plain matMul: on wasm the
 * transpose-flag matMul is ~10x slower (ENGINE.md). PyTorch checkpoints ([out, in]) are transposed at load.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { fanInUniform } from './init';
import { LoRAAdapter, type LoRAOptions } from './lora';

/** Construction options of {@link Linear}. */
export interface LinearOptions {
  /** Learn a bias [out] (default true). */
  bias?: boolean;
  /** Initial weight [in, out]; defaults to PyTorch's U(-1/sqrt(in), 1/sqrt(in)). */
  weightInit?: tf.Tensor;
}

/**
 * Fully connected layer: x [..., in] -> x W + b [..., out]. The weight is stored `[in, out]` (a plain matMul, fast on
 * wasm); PyTorch's `[out, in]` is transposed at load. Holds an optional LoRA adapter (see {@link applyLoRA}).
 */
export class Linear extends Module {
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  /** Weight [in, out]. */
  readonly weight: tf.Variable; // [in, out]
  /** Bias [out], or null without one. */
  readonly bias: tf.Variable | null; // [out]
  private adapter: LoRAAdapter | null = null;

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

  /** The LoRA adapter in this layer's slot, if any (see lora.ts). */
  get lora(): LoRAAdapter | null {
    return this.adapter;
  }

  /** Attaches a LoRA adapter as child `lora` (keys `lora.a`, `lora.b`); forward adds its output unless merged. */
  addLoRA(options: LoRAOptions): LoRAAdapter {
    if (this.adapter) throw new Error('Linear.addLoRA: this layer already has a LoRA adapter');
    this.adapter = this.addModule('lora', new LoRAAdapter(this.inFeatures, this.outFeatures, options));
    return this.adapter;
  }

  /** Folds the adapter into `weight`; returns false when there is nothing to merge. */
  mergeLoRA(): boolean {
    const adapter = this.adapter;
    if (!adapter || adapter.merged) return false;
    tf.tidy(() => this.weight.assign(tf.add(this.weight, adapter.delta())));
    adapter.merged = true;
    return true;
  }

  /** Subtracts a merged adapter from `weight` again (exact up to float32 rounding). */
  unmergeLoRA(): boolean {
    const adapter = this.adapter;
    if (!adapter || !adapter.merged) return false;
    tf.tidy(() => this.weight.assign(tf.sub(this.weight, adapter.delta())));
    adapter.merged = false;
    return true;
  }

  /** x: [..., in] -> [..., out]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lastDim = x.shape[x.rank - 1];
      if (lastDim !== this.inFeatures) {
        throw new Error(`Linear: expected last dimension ${this.inFeatures}, got input of shape [${x.shape}]`);
      }
      const flat = (x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures])) as tf.Tensor2D;
      let y: tf.Tensor = tf.matMul(flat, this.weight as tf.Tensor2D);
      if (this.adapter && !this.adapter.merged) y = tf.add(y, this.adapter.forward(flat));
      if (this.bias) y = tf.add(y, this.bias);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }

  override dispose(): void {
    super.dispose();
    this.adapter = null;
  }
}
