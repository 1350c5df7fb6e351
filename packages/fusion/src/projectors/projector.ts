/**
 * Projectors map encoder (or resampler) features to the LLM width. A projector is named by LLaVA's
 * `mm_projector_type` strings ('linear', 'mlp2x_gelu', 'mlp3x_gelu', ...) or given as a factory.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Module } from '@chimera/core';
import { LinearProjector } from './linear';
import { MLPProjector } from './mlp';

/** A module mapping features [..., inputDim] to [..., outputDim]. */
export type Projector = Module & {
  /** Feature width in. */
  readonly inputDim: number;
  /** Width out. */
  readonly outputDim: number;
  /** features [..., inputDim] -> [..., outputDim]; the caller owns the result. */
  forward(features: tf.Tensor): tf.Tensor;
};

/** 'linear', 'mlp{N}x_gelu' (e.g. 'mlp2x_gelu'), or a factory building a Projector for the two widths. */
export type ProjectorSpec = 'linear' | `mlp${number}x_gelu` | ((inputDim: number, outputDim: number) => Projector);

/** Builds the projector a {@link ProjectorSpec} names for the two widths. */
export function createProjector(spec: ProjectorSpec, inputDim: number, outputDim: number): Projector {
  let projector: Projector;
  if (typeof spec === 'function') {
    projector = spec(inputDim, outputDim);
  } else if (spec === 'linear') {
    projector = new LinearProjector(inputDim, outputDim);
  } else {
    const depth = typeof spec === 'string' ? /^mlp(\d+)x_gelu$/.exec(spec)?.[1] : undefined;
    if (depth === undefined) {
      throw new Error(
        `projector ${JSON.stringify(spec)} is unknown; use 'linear', 'mlp2x_gelu' (LLaVA-1.5), 'mlp{N}x_gelu', or a ` +
          'factory (inputDim, outputDim) => Projector',
      );
    }
    projector = new MLPProjector(inputDim, outputDim, Number(depth));
  }
  if (projector.inputDim !== inputDim || projector.outputDim !== outputDim) {
    throw new Error(
      `the projector factory built a ${projector.inputDim} -> ${projector.outputDim} projector, but ${inputDim} -> ${outputDim} ` +
        '(feature width -> LLM width) is needed',
    );
  }
  return projector;
}
