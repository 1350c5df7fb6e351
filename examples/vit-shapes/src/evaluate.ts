// Held-out accuracy of a classifier on the first `count` samples of a split, with a confusion matrix.
import * as tf from '@tensorflow/tfjs';
import type { ShapesDataset, SplitName } from '@chimera-examples/shapes-dataset';
import { classificationBatch } from './batches';
import type { ShapeClassifier } from './model';

export interface AccuracyResult {
  accuracy: number;
  correct: number;
  total: number;
  /** confusion[truth][predicted] counts. */
  confusion: number[][];
  /** The predicted class of each sample, in order. */
  predictions: number[];
}

export function evaluateAccuracy(model: ShapeClassifier, dataset: ShapesDataset, split: SplitName, count: number, batchSize = 128): AccuracyResult {
  const classes = dataset.kinds.length;
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const predictions: number[] = [];
  let correct = 0;
  for (let start = 0; start < count; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const { predicted, truth } = tf.tidy(() => {
      const batch = classificationBatch(dataset, split, indices);
      return { predicted: tf.argMax(model.forward(batch.pixels), 1).dataSync(), truth: batch.labels.dataSync() };
    });
    predicted.forEach((p, i) => {
      predictions.push(p);
      confusion[truth[i]!]![p]!++;
      if (p === truth[i]) correct++;
    });
  }
  return { accuracy: correct / count, correct, total: count, confusion, predictions };
}
