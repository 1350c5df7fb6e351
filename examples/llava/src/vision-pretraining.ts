/**
 * Pretraining of the vision tower, standing in for the CLIP tower LLaVA starts from. LLaVA never trains its
 * vision encoder; there is no pretrained tower for these images, so the ViT first learns them on a dense
 * labelling task: every patch token predicts the kind, colour and size class of the shape whose bounding box
 * holds the patch centre (or background), and the (kind, colour) pair as one class. That is the information the
 * LLM later reads from the image tokens, learned from every patch of every image at once, which is far faster
 * than learning it through the answers.
 *
 * Why the pair: the LLM finds an object by one attribute and reads the other, in both directions (shape questions
 * name a colour, colour questions a kind). Weighting kind or colour up made one lookup form and not the other;
 * the pair class weighs both attributes alike in every patch feature (README, "How the binding was found").
 *
 * The labels come from the scene description (the dataset's ground truth), never from the questions.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, Trainer, manualSeed, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import type { FeatureLayer, PreparedImage, RgbImage, VisionTransformer } from '@chimera/vision-encoder';
import { COLOR_NAMES, SPLITS, deriveSeed, type Scene, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';

/** Per-patch classes: background (0) then each value. */
export interface PatchLabels {
  kind: Int32Array;
  color: Int32Array;
  size: Int32Array;
  /** The (kind, colour) pair as one class: 1 + kindIndex * colours + colourIndex. */
  pair: Int32Array;
}

const SIZE_CLASSES = ['small', 'large'] as const;

/** Labels of a scene's patches in row-major order (the tower's token order). */
export function patchLabels(scene: Scene, kinds: readonly string[], patchSize: number): PatchLabels {
  const rows = Math.floor(scene.height / patchSize);
  const cols = Math.floor(scene.width / patchSize);
  const n = rows * cols;
  const labels: PatchLabels = { kind: new Int32Array(n), color: new Int32Array(n), size: new Int32Array(n), pair: new Int32Array(n) };
  for (const shape of scene.shapes) {
    const { x0, y0, x1, y1 } = shape.bbox;
    for (let r = 0; r < rows; r++) {
      const y = (r + 0.5) * patchSize;
      if (y < y0 || y >= y1) continue;
      for (let c = 0; c < cols; c++) {
        const x = (c + 0.5) * patchSize;
        if (x < x0 || x >= x1) continue;
        labels.kind[r * cols + c] = kinds.indexOf(shape.kind) + 1;
        labels.color[r * cols + c] = COLOR_NAMES.indexOf(shape.color) + 1;
        labels.size[r * cols + c] = SIZE_CLASSES.indexOf(shape.sizeClass) + 1;
        labels.pair[r * cols + c] = 1 + kinds.indexOf(shape.kind) * COLOR_NAMES.length + COLOR_NAMES.indexOf(shape.color);
      }
    }
  }
  return labels;
}

/** The tower with a linear head on its patch features at the tap the LLaVA model reads. */
export class PatchLabeler extends Module {
  readonly tower: VisionTransformer;
  readonly head: Linear;
  readonly featureLayer: FeatureLayer;
  readonly classes: { kind: number; color: number; size: number; pair: number };

  constructor(tower: VisionTransformer, featureLayer: FeatureLayer, numKinds: number) {
    super();
    this.tower = this.addModule('tower', tower);
    this.featureLayer = featureLayer;
    this.classes = { kind: numKinds + 1, color: COLOR_NAMES.length + 1, size: SIZE_CLASSES.length + 1, pair: numKinds * COLOR_NAMES.length + 1 };
    const { kind, color, size, pair } = this.classes;
    this.head = this.addModule('head', new Linear(tower.config.hiddenSize, kind + color + size + pair));
  }

  /** pixels [B, H, W, 3] -> logits per patch: kind [B, N, K+1], color [B, N, C+1], size [B, N, 3], pair [B, N, K*C+1]. */
  forward(pixels: tf.Tensor4D): { kind: tf.Tensor3D; color: tf.Tensor3D; size: tf.Tensor3D; pair: tf.Tensor3D } {
    return tf.tidy(() => {
      const { features } = this.tower.features(pixels, { layers: this.featureLayer }); // [B, N, D]
      const logits = this.head.forward(features) as tf.Tensor3D; // [B, N, K+1 + C+1 + 3 + K*C+1]
      const { kind, color, size, pair } = this.classes;
      const [k, c, s, p] = tf.split(logits, [kind, color, size, pair], 2) as tf.Tensor3D[];
      return { kind: k!, color: c!, size: s!, pair: p! };
    });
  }

  /** Only the head is this module's own: the tower belongs to the LLaVA model and outlives the labeler. */
  override dispose(): void {
    this.head.dispose();
  }
}

/** Weight of each label set in the patch-label loss. */
export type LabelWeights = Record<keyof PatchLabels, number>;

/** The example's weights: the pair twice, so both attributes weigh alike in every patch feature (file comment). */
export const DEFAULT_LABEL_WEIGHTS: LabelWeights = { kind: 1, color: 1, size: 1, pair: 2 };

/** Mean cross-entropy of each label set over every patch, weighted and summed (sets of weight 0 are skipped). */
export function patchLabelLoss(
  logits: ReturnType<PatchLabeler['forward']>,
  labels: Record<keyof PatchLabels, tf.Tensor2D>,
  weights: LabelWeights = DEFAULT_LABEL_WEIGHTS,
): tf.Scalar {
  return tf.tidy(() => {
    const crossEntropy = (l: tf.Tensor3D, target: tf.Tensor2D) => {
      const logProbs = tf.logSoftmax(l); // [B, N, K]
      return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(target, l.shape[2]), logProbs), 2)));
    };
    const sets = (Object.keys(weights) as (keyof PatchLabels)[]).filter((set) => weights[set] !== 0);
    return tf.addN(sets.map((set) => tf.mul(crossEntropy(logits[set], labels[set]), weights[set]))) as tf.Scalar;
  });
}

export interface LabelBatch {
  pixels: tf.Tensor4D;
  kind: tf.Tensor2D;
  color: tf.Tensor2D;
  size: tf.Tensor2D;
  pair: tf.Tensor2D;
}

export function labelBatch(dataset: ShapesDataset, split: SplitName, indices: readonly number[], prepare: (image: RgbImage) => PreparedImage, patchSize: number): LabelBatch {
  const samples = indices.map((i) => dataset.sample(split, i));
  const prepared = samples.map((s) => prepare(s.image));
  const { height, width } = prepared[0]!;
  const pixels = new Float32Array(prepared.length * height * width * 3);
  prepared.forEach((p, i) => pixels.set(p.pixels, i * height * width * 3));
  const labels = samples.map((s) => patchLabels(s.scene, dataset.kinds, patchSize));
  const stack = (key: keyof PatchLabels) => tf.tensor2d(labels.flatMap((l) => Array.from(l[key])), [labels.length, labels[0]![key].length], 'int32');
  return { pixels: tf.tensor4d(pixels, [prepared.length, height, width, 3]), kind: stack('kind'), color: stack('color'), size: stack('size'), pair: stack('pair') };
}

export interface VisionPretrainingOptions {
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** The vision plugin's prepare (so the tower learns exactly the pixels it will see inside the model). */
  prepare: (image: RgbImage) => PreparedImage;
  featureLayer: FeatureLayer;
  /** Weight of each label set in the loss (default DEFAULT_LABEL_WEIGHTS). */
  labelWeights?: Partial<LabelWeights>;
  /** Validation images for the patch accuracies reported at the end (default 200). */
  validationImages?: number;
  metricsPath?: string;
  progress?: boolean | 'auto';
}

export interface VisionPretrainingResult {
  history: StepMetrics[];
  /** On validation images, over the patches of shapes (background excluded): how often kind / colour are right. */
  kindAccuracy: number;
  colorAccuracy: number;
}

/** Trains `tower` (with a temporary head) on the dense patch labels. */
export async function pretrainVision(tower: VisionTransformer, dataset: ShapesDataset, options: VisionPretrainingOptions): Promise<VisionPretrainingResult> {
  manualSeed(deriveSeed(options.seed, 4));
  const labeler = new PatchLabeler(tower, options.featureLayer, dataset.kinds.length);
  const patchSize = tower.config.patchSize;
  const trainer = new Trainer<PatchLabeler, LabelBatch>({
    model: labeler,
    steps: options.steps,
    optimizer: {
      learningRate: options.steps > 0 ? warmupCosineSchedule({ peak: options.learningRate, totalSteps: options.steps, floor: options.learningRate / 10 }) : options.learningRate,
      weightDecay: 0,
    },
    clipNorm: 1,
    metricsPath: options.metricsPath,
    progress: options.progress ?? false,
    batchAt: (step) => {
      const stream = deriveSeed(options.seed, 5);
      const indices = Array.from({ length: options.batchSize }, (_, i) => deriveSeed(stream, (step * options.batchSize + i) >>> 0) % SPLITS.train.size);
      return labelBatch(dataset, 'train', indices, options.prepare, patchSize);
    },
    loss: (m, batch) => patchLabelLoss(m.forward(batch.pixels), batch, { ...DEFAULT_LABEL_WEIGHTS, ...options.labelWeights }),
  });
  try {
    const history = options.steps > 0 ? (await trainer.fit()).history : [];
    return { history, ...patchAccuracy(labeler, dataset, options.validationImages ?? 200, options.prepare) };
  } finally {
    trainer.dispose();
    labeler.dispose();
  }
}

/** Kind and colour accuracy over the shape patches of the first `count` validation images. */
export function patchAccuracy(labeler: PatchLabeler, dataset: ShapesDataset, count: number, prepare: (image: RgbImage) => PreparedImage) {
  let patches = 0;
  let kindRight = 0;
  let colorRight = 0;
  for (let start = 0; start < count; start += 100) {
    const indices = Array.from({ length: Math.min(100, count - start) }, (_, i) => start + i);
    const { kind, color, truthKind, truthColor } = tf.tidy(() => {
      const batch = labelBatch(dataset, 'validation', indices, prepare, labeler.tower.config.patchSize);
      const logits = labeler.forward(batch.pixels);
      return {
        kind: tf.argMax(logits.kind, 2).dataSync(),
        color: tf.argMax(logits.color, 2).dataSync(),
        truthKind: batch.kind.dataSync(),
        truthColor: batch.color.dataSync(),
      };
    });
    truthKind.forEach((truth, i) => {
      if (truth === 0) return;
      patches++;
      if (kind[i] === truth) kindRight++;
      if (color[i] === truthColor[i]) colorRight++;
    });
  }
  return { kindAccuracy: kindRight / Math.max(1, patches), colorAccuracy: colorRight / Math.max(1, patches) };
}
