// Batches of generated images as tensors: pixels normalized to [-1, 1] (SigLIP's statistics) and int32 labels.
// Everything is a pure function of (dataset, split, indices), so the Trainer's batchAt(step) can build them.
import * as tf from '@tensorflow/tfjs';
import { imagesToTensor } from '@chimera/vision-encoder';
import { deriveSeed, SPLITS, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';

export interface ClassificationBatch {
  pixels: tf.Tensor4D; // [B, H, W, 3]
  labels: tf.Tensor1D; // [B] int32
}

export function classificationBatch(dataset: ShapesDataset, split: SplitName, indices: readonly number[]): ClassificationBatch {
  const samples = indices.map((i) => dataset.classification(split, i));
  return {
    pixels: imagesToTensor(samples.map((s) => s.image), 'siglip'),
    labels: tf.tensor1d(samples.map((s) => s.label), 'int32'),
  };
}

/**
 * Training-sample indices of a step: spread over the whole train split by a seeded bijective hash, so runs
 * with different seeds see different images and a step's images never depend on earlier steps.
 */
export function trainingIndices(seed: number, step: number, batchSize: number): number[] {
  const size = SPLITS.train.size;
  return Array.from({ length: batchSize }, (_, i) => deriveSeed(seed, (step * batchSize + i) >>> 0) % size);
}
