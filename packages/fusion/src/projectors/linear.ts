/**
 * The linear projector: one Linear from the feature width to the LLM width (LLaVA, Liu et al. 2023,
 * "Visual Instruction Tuning"). Named `linear_1` like HF's LlavaMultiModalProjector so weights map by rule.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module } from '@chimera/core';

/**
 * LLaVA's linear projector: one Linear `linear_1`, features [..., inputDim] -> [..., outputDim] (HF
 * LlavaMultiModalProjector names).
 */
export class LinearProjector extends Module {
  /** Feature width in. */
  readonly inputDim: number;
  /** Width out (the LLM's). */
  readonly outputDim: number;
  /** The projection [inputDim, outputDim]. */
  readonly linear_1: Linear;

  constructor(inputDim: number, outputDim: number) {
    super();
    this.inputDim = inputDim;
    this.outputDim = outputDim;
    this.linear_1 = this.addModule('linear_1', new Linear(inputDim, outputDim));
  }

  /** features [..., inputDim] -> [..., outputDim]. */
  forward(features: tf.Tensor): tf.Tensor {
    return this.linear_1.forward(features);
  }
}
