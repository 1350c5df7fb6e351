/**
 * Pre-training of the vision encoder, which Flamingo then keeps frozen. Flamingo's encoder was pre-trained
 * contrastively on image-text pairs (an NFNet); ours stands in with a cheaper supervised task on the same kind
 * of one-shape scenes: the mean of the ViT's patch features names the shape's kind and colour through two linear
 * heads (thrown away afterwards). The targets come from the scene description, never from question text.
 *
 * Why the mean over all patches: at init the Perceiver's latents attend about uniformly to the patch features,
 * so a kind that is linearly readable from their mean is readable by the resampler from the first fusion step.
 * (Pooling only the patches under the shape taught kinds as well, but the fusion stage then learned shape
 * questions about twice as slowly: the kind was diluted among background patches until attention focused.)
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, type StepMetrics } from '@chimera/core';
import type { PreparedImage, RgbImage, VisionTransformer } from '@chimera/vision-encoder';
import { COLOR_NAMES, SPLITS, deriveSeed, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';
import { runStage } from '@chimera-examples/kit';
import type { StageOptions } from './training';

/** The encoder with two heads over its mean patch feature; only the encoder is kept after pre-training. */
export class ShapeLabeler extends Module {
  readonly encoder: VisionTransformer;
  readonly kind_head: Linear;
  readonly color_head: Linear;

  constructor(encoder: VisionTransformer, kinds: number) {
    super();
    this.encoder = this.addModule('encoder', encoder);
    const dim = encoder.config.hiddenSize;
    this.kind_head = this.addModule('kind_head', new Linear(dim, kinds));
    this.color_head = this.addModule('color_head', new Linear(dim, COLOR_NAMES.length));
  }

  /** pixels [B, H, W, 3] -> logits [B, kinds] and [B, colours]. */
  forward(pixels: tf.Tensor4D): { kinds: tf.Tensor2D; colors: tf.Tensor2D } {
    return tf.tidy(() => {
      const { features } = this.encoder.features(pixels, { layers: 'final' }); // [B, N, D], CLS dropped: what the Perceiver reads
      const pooled = tf.mean(features, 1) as tf.Tensor2D;
      return { kinds: this.kind_head.forward(pooled) as tf.Tensor2D, colors: this.color_head.forward(pooled) as tf.Tensor2D };
    });
  }
}

export interface ShapeBatch {
  pixels: tf.Tensor4D;
  /** int32 [B]: index in dataset.kinds / COLOR_NAMES of each image's (first) shape. */
  kinds: tf.Tensor1D;
  colors: tf.Tensor1D;
}

export function shapeBatch(dataset: ShapesDataset, split: SplitName, indices: readonly number[], prepare: (image: RgbImage) => PreparedImage): ShapeBatch {
  const samples = indices.map((i) => dataset.sample(split, i));
  const prepared = samples.map((s) => prepare(s.image));
  const { height, width } = prepared[0]!;
  const pixels = new Float32Array(prepared.length * height * width * 3);
  prepared.forEach((p, i) => pixels.set(p.pixels, i * height * width * 3));
  const shapes = samples.map((s, i) => {
    const shape = s.scene.shapes[0];
    if (!shape || s.scene.shapes.length > 1) {
      throw new Error(`shapeBatch: vision pre-training labels one-shape scenes, but ${split} image ${indices[i]} has ${s.scene.shapes.length} shapes; use shapesPerImage: 1`);
    }
    return shape;
  });
  return {
    pixels: tf.tensor4d(pixels, [prepared.length, height, width, 3]),
    kinds: tf.tensor1d(shapes.map((s) => dataset.kinds.indexOf(s.kind)), 'int32'),
    colors: tf.tensor1d(shapes.map((s) => COLOR_NAMES.indexOf(s.color)), 'int32'),
  };
}

/** Mean softmax cross-entropy of logits [B, K] against int32 labels [B]. */
function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, logits.shape[1]), tf.logSoftmax(logits)), -1))) as tf.Scalar);
}

/** Trains the encoder (and throwaway heads) to name each image's shape kind and colour; returns held-out accuracies. */
export async function pretrainVision(
  encoder: VisionTransformer,
  dataset: ShapesDataset,
  prepare: (image: RgbImage) => PreparedImage,
  options: StageOptions,
): Promise<{ history: StepMetrics[]; accuracy: { kind: number; color: number } }> {
  const labeler = new ShapeLabeler(encoder, dataset.kinds.length);
  // Images from their own seeded stream of train indices.
  const indicesAt = (step: number) =>
    Array.from({ length: options.batchSize }, (_, i) => deriveSeed(options.seed, (step * options.batchSize + i) >>> 0) % SPLITS.train.size);
  const history = await runStage<ShapeLabeler, ShapeBatch>(labeler, options, {
    label: 'vision',
    weightDecay: 0.05, // as examples/vit-shapes
    batchAt: (step) => shapeBatch(dataset, 'train', indicesAt(step), prepare),
    loss: (m, batch) => {
      const { kinds, colors } = m.forward(batch.pixels);
      return tf.add(crossEntropy(kinds, batch.kinds), crossEntropy(colors, batch.colors)) as tf.Scalar;
    },
  });
  // Held-out accuracy on validation images: what the frozen features carry.
  const accuracy = tf.tidy(() => {
    const batch = shapeBatch(dataset, 'validation', Array.from({ length: 256 }, (_, i) => i), prepare);
    const { kinds, colors } = labeler.forward(batch.pixels);
    const hit = (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'float32')).dataSync()[0]!;
    return { kind: hit(kinds, batch.kinds), color: hit(colors, batch.colors) };
  });
  // Free the heads only: the encoder lives on in the image plugin.
  labeler.kind_head.dispose();
  labeler.color_head.dispose();
  return { history, accuracy };
}
