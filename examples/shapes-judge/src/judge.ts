/**
 * The judge: names the kind and colour of 32x32 generation-set images, so the generating examples (chameleon,
 * janus) can score what they draw. Trained on real images (all 30 kind-colour pairs, a quarter of them blurred by a
 * 2x down-and-up resize, a stand-in for a decoder's softness), seeded and deterministic; `loadOrTrainJudge` caches
 * the weights so examples and tests train it once.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Trainer, loadCheckpoint, saveCheckpoint, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import { imagesToTensor, resizeImage, type RgbImage } from '@chimera/vision-encoder';
import {
  COLOR_NAMES,
  SHAPE_KINDS,
  ShapesDataset,
  deriveSeed,
  generationOptions,
  generationSample,
  SPLITS,
  type ColorName,
  type KindColor,
  type ShapeKind,
  type SplitName,
} from '@chimera-examples/shapes-dataset';
import { defaultRunsDir } from '@chimera-examples/kit';
import { buildJudgeNet, type JudgeNet } from './model';

/** One judged image. */
export interface Verdict {
  kind: ShapeKind;
  color: ColorName;
  /** Softmax probability of the named kind / colour. */
  kindProb: number;
  colorProb: number;
}

/** Fractions of images whose kind, colour, or both match what was asked for. */
export interface JudgeScore {
  kind: number;
  color: number;
  both: number;
  total: number;
}

export interface TrainJudgeOptions {
  /** Seeds the weights and the training images (default 0). */
  seed?: number;
  /** Default 1000. */
  steps?: number;
  /** Default 32. */
  batchSize?: number;
  /** Peak learning rate (default 3e-3, warmup then cosine to a tenth). */
  learningRate?: number;
  /** Fraction of training images blurred by a 2x down-and-up resize (default 0.25). */
  blurFraction?: number;
  /** Channel width of the first convolution (default 16). */
  width?: number;
  onStep?: (metrics: StepMetrics) => void;
  progress?: boolean | 'auto';
  /** The Trainer's per-step JSONL metrics. */
  metricsPath?: string;
}

/** The dataset the judge trains and is scored on (seed 0 of the generation set). */
export function judgeDataset(): ShapesDataset {
  return new ShapesDataset(generationOptions());
}

/** A 2x down-and-up bilinear resize: the blur a small decoder's output tends to have. */
export function softened(image: RgbImage): RgbImage {
  return resizeImage(resizeImage(image, image.width / 2, image.height / 2, 'bilinear'), image.width, image.height, 'bilinear');
}

export class Judge {
  constructor(readonly net: JudgeNet) {}

  /** Names kind and colour of each image (RgbImage list, or pixels [B, 32, 32, 3] in [-1, 1]; not disposed). */
  judge(images: readonly RgbImage[] | tf.Tensor4D, batchSize = 256): Verdict[] {
    const count = Array.isArray(images) ? images.length : (images as tf.Tensor4D).shape[0];
    const verdicts: Verdict[] = [];
    for (let start = 0; start < count; start += batchSize) {
      const end = Math.min(count, start + batchSize);
      const [kindProbs, colorProbs] = tf.tidy(() => {
        const pixels = Array.isArray(images)
          ? imagesToTensor((images as readonly RgbImage[]).slice(start, end), 'siglip')
          : tf.slice(images as tf.Tensor4D, [start, 0, 0, 0], [end - start, -1, -1, -1]);
        const logits = this.net.forward(pixels);
        return [tf.softmax(logits.kind).arraySync() as number[][], tf.softmax(logits.color).arraySync() as number[][]];
      });
      for (let i = 0; i < kindProbs.length; i++) {
        const k = argmax(kindProbs[i]!);
        const c = argmax(colorProbs[i]!);
        verdicts.push({ kind: SHAPE_KINDS[k]!, color: COLOR_NAMES[c]!, kindProb: kindProbs[i]![k]!, colorProb: colorProbs[i]![c]! });
      }
    }
    return verdicts;
  }

  /** How many images show what was asked for (`wanted[i]` for image i). */
  score(images: readonly RgbImage[] | tf.Tensor4D, wanted: readonly KindColor[]): JudgeScore {
    const verdicts = this.judge(images);
    if (verdicts.length !== wanted.length) throw new Error(`Judge.score: ${verdicts.length} images but ${wanted.length} wanted pairs; give one pair per image`);
    let kind = 0;
    let color = 0;
    let both = 0;
    verdicts.forEach((v, i) => {
      const k = v.kind === wanted[i]!.kind;
      const c = v.color === wanted[i]!.color;
      kind += Number(k);
      color += Number(c);
      both += Number(k && c);
    });
    const total = Math.max(1, verdicts.length);
    return { kind: kind / total, color: color / total, both: both / total, total: verdicts.length };
  }

  /** Scores `count` real images of `split` (blurred when `soften`). */
  scoreReal(split: SplitName, count: number, soften = false): JudgeScore {
    const dataset = judgeDataset();
    const samples = Array.from({ length: count }, (_, i) => generationSample(dataset, split, i));
    return this.score(samples.map((s) => (soften ? softened(s.image) : s.image)), samples);
  }

  save(path: string): Promise<string[]> {
    return saveCheckpoint(this.net, path, { metadata: { format: 'chimera-shapes-judge-1' } });
  }

  dispose(): void {
    this.net.dispose();
  }
}

/** Trains a judge from scratch on real generation-set images. */
export async function trainJudge(options: TrainJudgeOptions = {}): Promise<Judge> {
  const seed = options.seed ?? 0;
  const steps = options.steps ?? 1000;
  const batchSize = options.batchSize ?? 32;
  const peak = options.learningRate ?? 3e-3;
  const blurFraction = options.blurFraction ?? 0.25;
  const dataset = judgeDataset();
  const net = buildJudgeNet(seed, options.width);
  const trainer = new Trainer({
    model: net,
    steps,
    seed,
    optimizer: { learningRate: warmupCosineSchedule({ peak, warmupSteps: Math.ceil(steps / 20), totalSteps: steps, floor: peak / 10 }), weightDecay: 0.01 },
    clipNorm: 1,
    progress: options.progress ?? false,
    metricsPath: options.metricsPath,
    batchAt: (step) => {
      const samples = Array.from({ length: batchSize }, (_, i) => {
        const hash = deriveSeed(seed, (step * batchSize + i) >>> 0);
        const sample = generationSample(dataset, 'train', hash % SPLITS.train.size);
        return { sample, blur: (deriveSeed(hash, 7) % 1000) / 1000 < blurFraction };
      });
      return {
        pixels: imagesToTensor(samples.map(({ sample, blur }) => (blur ? softened(sample.image) : sample.image)), 'siglip'),
        kinds: tf.tensor1d(samples.map(({ sample }) => SHAPE_KINDS.indexOf(sample.kind)), 'int32'),
        colors: tf.tensor1d(samples.map(({ sample }) => COLOR_NAMES.indexOf(sample.color)), 'int32'),
      };
    },
    loss: (model, batch) => {
      const logits = model.forward(batch.pixels);
      return tf.add(crossEntropy(logits.kind, batch.kinds), crossEntropy(logits.color, batch.colors)) as tf.Scalar;
    },
    onStep: options.onStep,
  });
  try {
    await trainer.fit();
  } finally {
    trainer.dispose();
  }
  return new Judge(net);
}

/** Loads a judge saved by `Judge.save`. */
export async function loadJudge(path: string, width?: number): Promise<Judge> {
  const net = buildJudgeNet(0, width);
  await loadCheckpoint(net, path);
  return new Judge(net);
}

/** The cached judge under `cacheDir` (default runs/shapes-judge at the repo root), trained and saved on first use. */
export async function loadOrTrainJudge(cacheDir = defaultJudgeDir(), log: (line: string) => void = () => {}): Promise<Judge> {
  const path = join(cacheDir, 'judge.safetensors');
  if (existsSync(path)) return loadJudge(path);
  log(`training the shapes judge (about a minute of CPU); it is cached in ${path}`);
  const judge = await trainJudge();
  mkdirSync(cacheDir, { recursive: true });
  await judge.save(path);
  return judge;
}

/** runs/shapes-judge at the repository root. */
export function defaultJudgeDir(): string {
  return defaultRunsDir('shapes-judge');
}

function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, logits.shape[1]), tf.logSoftmax(logits)), 1))) as tf.Scalar);
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
