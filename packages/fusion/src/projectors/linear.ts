/**
 * The linear projector: one Linear from the feature width to the LLM width (LLaVA, Liu et al. 2023,
 * "Visual Instruction Tuning"). Named `linear_1` like HF's LlavaMultiModalProjector so weights map by rule.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module } from '@chimera/core';

export class LinearProjector extends Module {
  readonly inputDim: number;
  readonly outputDim: number;
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
