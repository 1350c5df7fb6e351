/**
 * Pretraining of a ViT tower on dense patch labels (views.ts), the stand-in for the pretrained CLIP / SigLIP /
 * InternViT tower a VLM starts from: there is none for these images, so the tower first learns them by predicting,
 * for every patch token of every view, the kind, colour and size class of the shape under it and the (kind,
 * colour) pair as one class. That is what the LLM later reads from the image tokens, learned from every patch at
 * once, far faster than through the answers. (LLaVA's README, "How the binding was found", is why the pair is
 * there and weighs twice: it makes every patch feature carry both attributes alike.)
 *
 * The tower learns the exact pixels it will see inside the model: each image goes through the vision plugin's
 * `prepare` ('native': one view at its own size; 'tiles': fixed-size tiles plus a thumbnail), and each view is
 * labelled through its geometry. Views of different sizes in a step run as one forward pass per size.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, manualSeed, type StepMetrics } from '@chimera/core';
import type { FeatureLayer, PreparedImage, RgbImage, VisionTransformer } from '@chimera/vision-encoder';
import { runStage } from '@chimera-examples/kit';
import { SPLITS, deriveSeed, type ShapeKind, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';
import { LABEL_SETS, imageViews, labelClasses, viewPatchLabels, type PatchLabels, type View, type ViewKind } from './views';

type LabelSet = keyof PatchLabels;
type PatchLogits = Record<LabelSet, tf.Tensor3D>;

/** The tower with a temporary linear head on its patch features at the tap the VLM reads. */
export class PatchLabeler extends Module {
  readonly tower: VisionTransformer;
  readonly head: Linear;
  readonly featureLayer: FeatureLayer;
  readonly classes: Record<LabelSet, number>;

  constructor(tower: VisionTransformer, featureLayer: FeatureLayer, kinds: readonly ShapeKind[]) {
    super();
    this.tower = this.addModule('tower', tower);
    this.featureLayer = featureLayer;
    this.classes = labelClasses(kinds);
    this.head = this.addModule('head', new Linear(tower.config.hiddenSize, LABEL_SETS.reduce((sum, set) => sum + this.classes[set], 0)));
  }

  /** pixels [B, H, W, 3] -> logits per patch and label set, [B, N, classes]. */
  forward(pixels: tf.Tensor4D): PatchLogits {
    return tf.tidy(() => {
      const { features } = this.tower.features(pixels, { layers: this.featureLayer }); // [B, N, D]
      const logits = this.head.forward(features) as tf.Tensor3D; // [B, N, sum of classes]
      const parts = tf.split(logits, LABEL_SETS.map((set) => this.classes[set]), 2) as tf.Tensor3D[];
      return Object.fromEntries(LABEL_SETS.map((set, i) => [set, parts[i]!])) as PatchLogits;
    });
  }

  /** Only the head is this module's own: the tower belongs to the model and outlives the labeler. */
  override dispose(): void {
    this.head.dispose();
  }
}

/** Weight of each label set in the loss. */
export type LabelWeights = Record<LabelSet, number>;

/** The pair twice, so both attributes weigh alike in every patch feature (file comment). */
export const DEFAULT_LABEL_WEIGHTS: LabelWeights = { kind: 1, color: 1, size: 1, pair: 2 };

/** Background against shape patches in the loss: fine-detail views are ~97% background (patchLabelLoss). */
export const DEFAULT_BACKGROUND_WEIGHT = 0.1;

/** The views of one size in a batch: pixels [V, H, W, 3] and each label set [V, N]. */
export interface ViewGroup {
  pixels: tf.Tensor4D;
  labels: Record<LabelSet, tf.Tensor2D>;
  kinds: ViewKind[];
}

/** How to turn one image into labelled views. */
export interface ViewSource {
  dataset: ShapesDataset;
  /** The vision plugin's prepare (`image.prepare`), so the tower learns the pixels it will see in the model. */
  prepare: (image: RgbImage) => PreparedImage;
  /** Which views train and count (default every view the plugin makes). */
  views?: readonly ViewKind[];
  /** The views of a prepared image (default imageViews: 'native', 'tiles', square 'vit'). */
  viewsOf?: (prepared: PreparedImage) => View[];
}

/** Labelled views of the given samples, grouped by view size (one forward pass each). */
export function viewBatch(source: ViewSource, split: SplitName, indices: readonly number[], patchSize: number): ViewGroup[] {
  const keep = source.views ?? ['whole', 'tile', 'thumbnail'];
  const viewsOf = source.viewsOf ?? imageViews;
  const groups = new Map<string, { pixels: Float32Array[]; labels: PatchLabels[]; kinds: ViewKind[]; height: number; width: number }>();
  for (const index of indices) {
    const sample = source.dataset.sample(split, index);
    const prepared = source.prepare(sample.image);
    const views = viewsOf(prepared);
    if (views.length !== prepared.views) {
      throw new Error(`viewBatch: ${views.length} view geometries for an image prepared into ${prepared.views} views; viewsOf must give one per view, in order`);
    }
    const viewSize = prepared.height * prepared.width * 3;
    views.forEach((view, v) => {
      if (!keep.includes(view.kind)) return;
      const key = `${prepared.height}x${prepared.width}`;
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { pixels: [], labels: [], kinds: [], height: prepared.height, width: prepared.width }));
      group.pixels.push(prepared.pixels.subarray(v * viewSize, (v + 1) * viewSize));
      group.labels.push(viewPatchLabels(sample.scene, view, source.dataset.kinds, patchSize));
      group.kinds.push(view.kind);
    });
  }
  if (groups.size === 0) throw new Error(`viewBatch: none of the views of these images is one of ${keep.join(', ')}; check the views option against the plugin's mode`);
  return [...groups.values()].map((g) => {
    const pixels = new Float32Array(g.pixels.length * g.height * g.width * 3);
    g.pixels.forEach((p, i) => pixels.set(p, i * p.length));
    const n = g.labels[0]!.kind.length;
    const stack = (set: LabelSet) => {
      const values = new Int32Array(g.labels.length * n);
      g.labels.forEach((l, i) => values.set(l[set], i * n));
      return tf.tensor2d(values, [g.labels.length, n], 'int32');
    };
    return {
      pixels: tf.tensor4d(pixels, [g.pixels.length, g.height, g.width, 3]),
      labels: Object.fromEntries(LABEL_SETS.map((set) => [set, stack(set)])) as Record<LabelSet, tf.Tensor2D>,
      kinds: g.kinds,
    };
  });
}

/**
 * Weighted mean cross-entropy over every patch of every view (views of all sizes weigh per patch), per label set,
 * weighted and summed; sets of weight 0 are skipped. Background patches weigh `backgroundWeight` (shape patches
 * 1): at fine detail a shape covers a few of a view's hundreds of patches, and at full weight the background
 * drowns the kinds.
 */
export function patchLabelLoss(labeler: PatchLabeler, groups: readonly ViewGroup[], weights: LabelWeights = DEFAULT_LABEL_WEIGHTS, backgroundWeight = 1): tf.Scalar {
  return tf.tidy(() => {
    const sets = LABEL_SETS.filter((set) => weights[set] !== 0);
    const patchWeights = groups.map((group) => {
      const isShape = tf.cast(tf.greater(group.labels.kind, 0), 'float32'); // [V, N]
      return tf.add(tf.mul(isShape, 1 - backgroundWeight), backgroundWeight); // 1 on shapes, backgroundWeight elsewhere
    });
    const total = tf.addN(patchWeights.map((w) => tf.sum(w)));
    const sums = groups.map((group, g) => {
      const logits = labeler.forward(group.pixels);
      return tf.addN(
        sets.map((set) => {
          const logProbs = tf.logSoftmax(logits[set]); // [V, N, K]
          const logLikelihood = tf.sum(tf.mul(tf.oneHot(group.labels[set], logProbs.shape[2]), logProbs), 2); // [V, N]
          return tf.mul(tf.sum(tf.mul(logLikelihood, patchWeights[g]!)), -weights[set]);
        }),
      );
    });
    return tf.div(tf.addN(sums), tf.maximum(total, 1e-6)) as tf.Scalar;
  });
}

/** Kind and colour accuracy over the patches of shapes (background excluded). */
export interface PatchAccuracy {
  kind: number;
  color: number;
  /** Shape patches counted. */
  patches: number;
  /** The same per kind of view. */
  byView: Partial<Record<ViewKind, { kind: number; color: number; patches: number }>>;
}

/** Patch accuracy of the labeler on the first `count` images of `split` (default validation). */
export function patchAccuracy(labeler: PatchLabeler, source: ViewSource, count: number, split: SplitName = 'validation'): PatchAccuracy {
  const tally = new Map<ViewKind | 'all', { kind: number; color: number; patches: number }>();
  const add = (key: ViewKind | 'all', kindRight: boolean, colorRight: boolean) => {
    const t = tally.get(key) ?? { kind: 0, color: 0, patches: 0 };
    t.patches++;
    if (kindRight) t.kind++;
    if (colorRight) t.color++;
    tally.set(key, t);
  };
  const patchSize = labeler.tower.config.patchSize;
  for (let start = 0; start < count; start += 16) {
    const indices = Array.from({ length: Math.min(16, count - start) }, (_, i) => start + i);
    const groups = viewBatch(source, split, indices, patchSize);
    try {
      for (const group of groups) {
        const [kind, color] = tf.tidy(() => {
          const logits = labeler.forward(group.pixels);
          return [tf.argMax(logits.kind, 2), tf.argMax(logits.color, 2)];
        });
        const predictedKind = kind!.dataSync();
        const predictedColor = color!.dataSync();
        tf.dispose([kind!, color!]);
        const truthKind = group.labels.kind.dataSync();
        const truthColor = group.labels.color.dataSync();
        const perView = truthKind.length / group.kinds.length;
        truthKind.forEach((truth, i) => {
          if (truth === 0) return;
          const kindRight = predictedKind[i] === truth;
          const colorRight = predictedColor[i] === truthColor[i];
          add('all', kindRight, colorRight);
          add(group.kinds[Math.floor(i / perView)]!, kindRight, colorRight);
        });
      }
    } finally {
      groups.forEach((g) => tf.dispose([g.pixels, ...Object.values(g.labels)]));
    }
  }
  const rate = (t: { kind: number; color: number; patches: number } | undefined) => ({
    kind: t ? t.kind / Math.max(1, t.patches) : 0,
    color: t ? t.color / Math.max(1, t.patches) : 0,
    patches: t?.patches ?? 0,
  });
  const byView: PatchAccuracy['byView'] = {};
  for (const [key, t] of tally) if (key !== 'all') byView[key] = rate(t);
  return { ...rate(tally.get('all')), byView };
}

export interface VisionPretrainingOptions extends ViewSource {
  steps: number;
  /** Peak learning rate (warmup, then cosine to a tenth: the kit's runStage). */
  learningRate: number;
  /** Images per step (each gives all its selected views). */
  batchSize: number;
  /** Seeds the head, the Trainer and which training images each step draws. */
  seed: number;
  /** The tap the model reads (the plugin's `layers`), so the features the head learns from are the ones used. */
  featureLayer: FeatureLayer;
  /** Weight of each label set (default DEFAULT_LABEL_WEIGHTS). */
  labelWeights?: Partial<LabelWeights>;
  /** Weight of a background patch against a shape patch's 1 (default DEFAULT_BACKGROUND_WEIGHT; patchLabelLoss). */
  backgroundWeight?: number;
  /** Validation images for the accuracy at the end (default 100; 0 skips it). */
  validationImages?: number;
  /**
   * Other datasets to measure the same accuracy on, by name (their validation splits, same prepare and views):
   * e.g. unseen image sizes, or the model's own images when the tower pretrains on smaller ones.
   */
  validationSets?: Record<string, ShapesDataset>;
  metricsPath?: string;
  progress?: boolean | 'auto';
}

export interface VisionPretrainingResult {
  history: StepMetrics[];
  /** On validation images, after training (null with validationImages 0). */
  accuracy: PatchAccuracy | null;
  /** The same on each of options.validationSets. */
  validation: Record<string, PatchAccuracy>;
}

/** Trains `tower` (through a temporary head, disposed at the end) on dense patch labels of the plugin's views. */
export async function pretrainVisionTower(tower: VisionTransformer, options: VisionPretrainingOptions): Promise<VisionPretrainingResult> {
  manualSeed(deriveSeed(options.seed, 4));
  const labeler = new PatchLabeler(tower, options.featureLayer, options.dataset.kinds);
  const weights = { ...DEFAULT_LABEL_WEIGHTS, ...options.labelWeights };
  const stream = deriveSeed(options.seed, 5);
  try {
    const history =
      options.steps > 0
        ? await runStage<PatchLabeler, ViewGroup[]>(
            labeler,
            { steps: options.steps, learningRate: options.learningRate, seed: options.seed, metricsPath: options.metricsPath, progress: options.progress },
            {
              label: 'vision',
              weightDecay: 0,
              batchAt: (step) => {
                const indices = Array.from({ length: options.batchSize }, (_, i) => deriveSeed(stream, (step * options.batchSize + i) >>> 0) % SPLITS.train.size);
                return viewBatch(options, 'train', indices, tower.config.patchSize);
              },
              loss: (m, groups) => patchLabelLoss(m, groups, weights, options.backgroundWeight ?? DEFAULT_BACKGROUND_WEIGHT),
            },
          )
        : [];
    const count = options.validationImages ?? 100;
    const validation = Object.fromEntries(
      Object.entries(options.validationSets ?? {}).map(([name, dataset]) => [name, patchAccuracy(labeler, { ...options, dataset }, Math.max(count, 1))]),
    );
    return { history, accuracy: count > 0 ? patchAccuracy(labeler, options, count) : null, validation };
  } finally {
    labeler.dispose();
  }
}
