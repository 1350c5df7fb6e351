/**
 * The classifier: a ViT tower (Dosovitskiy et al. 2021) trained from scratch, pooled to one vector per image
 * (the CLS token, or the mean of the patch tokens), and a linear head to one logit per shape kind.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, manualSeed } from '@chimera/core';
import { VisionTransformer, tinyViT, type ViTConfig, type ViTPositions } from '@chimera/vision-encoder';

/** 'cls': the CLS token of the final output; 'mean': the mean of the patch tokens (CLS excluded). */
export type Pooling = 'cls' | 'mean';

export interface ClassifierSize {
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** 'learned' absolute positions, or 'rope2d' (rotary on (row, col): relative, so shifts matter less). */
  positions: ViTPositions;
}

export const DEFAULT_CLASSIFIER_SIZE: ClassifierSize = {
  imageSize: 24,
  patchSize: 4,
  hiddenSize: 48,
  numLayers: 2,
  numHeads: 4,
  intermediateSize: 96,
  positions: 'learned',
};

export class ShapeClassifier extends Module {
  readonly vit: VisionTransformer;
  readonly head: Linear;
  readonly pooling: Pooling;
  readonly numClasses: number;

  constructor(config: ViTConfig, numClasses: number, pooling: Pooling = 'mean') {
    super();
    if (!(Number.isInteger(numClasses) && numClasses >= 2)) throw new Error(`ShapeClassifier: numClasses must be an integer >= 2, got ${numClasses}`);
    if (pooling !== 'cls' && pooling !== 'mean') throw new Error(`ShapeClassifier: pooling must be 'cls' or 'mean', got ${JSON.stringify(pooling)}`);
    if (pooling === 'cls' && !config.clsToken) throw new Error("ShapeClassifier: pooling 'cls' needs a tower with clsToken: true (or use pooling 'mean')");
    this.vit = this.addModule('vit', new VisionTransformer(config));
    this.head = this.addModule('head', new Linear(config.hiddenSize, numClasses));
    this.pooling = pooling;
    this.numClasses = numClasses;
  }

  /** pixels [B, H, W, 3] (normalized) -> logits [B, classes]. */
  forward(pixels: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const { hidden, hasClsToken } = this.vit.forward(pixels); // [B, T, D]
      let pooled: tf.Tensor2D;
      if (this.pooling === 'cls') {
        pooled = tf.squeeze(tf.slice(hidden, [0, 0, 0], [-1, 1, -1]), [1]) as tf.Tensor2D; // [B, D]
      } else {
        const patches = hasClsToken ? tf.slice(hidden, [0, 1, 0], [-1, -1, -1]) : hidden;
        pooled = tf.mean(patches, 1) as tf.Tensor2D; // [B, D]
      }
      return this.head.forward(pooled) as tf.Tensor2D;
    });
  }
}

/** A fresh classifier with weights drawn from `seed` (a CLIP-style tower sized by `size`). */
export function buildClassifier(size: Partial<ClassifierSize>, numClasses: number, seed: number, pooling: Pooling = 'mean'): ShapeClassifier {
  const { imageSize, patchSize, hiddenSize, numLayers, numHeads, intermediateSize, positions } = { ...DEFAULT_CLASSIFIER_SIZE, ...size };
  manualSeed(seed);
  const config = tinyViT({ imageSize, patchSize, hiddenSize, numLayers, numHeads, intermediateSize, positions });
  return new ShapeClassifier(config, numClasses, pooling);
}

/** Mean softmax cross-entropy of logits [B, K] against integer labels. */
export function classificationLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const targets = tf.oneHot(labels, logits.shape[1]); // [B, K]
    const logProbs = tf.logSoftmax(logits); // [B, K]
    return tf.neg(tf.mean(tf.sum(tf.mul(targets, logProbs), 1))) as tf.Scalar;
  });
}
