/**
 * @chimera/core: the tensor runtime, module system and layers, the modality contract and sequence batch,
 * safetensors and checkpoints, training and generation utilities. `tf` is re-exported so that every Chimera
 * package and the application share one TensorFlow.js instance (its API is TensorFlow.js's own, not listed here).
 *
 * @packageDocumentation
 */
export * as tf from '@tensorflow/tfjs';
export * from './runtime/index';
export * from './nn/index';
export * from './modality/index';
export * from './weights/index';
export * from './training/index';
export * from './generation/index';
