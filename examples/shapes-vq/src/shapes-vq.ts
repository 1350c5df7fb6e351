/**
 * The tokenizer of the generating examples: a VQModel (SHAPES_VQ_CONFIG: 8x downsampling, a 4x4 grid of codes
 * per 32x32 image) trained with @chimera/vq-tokenizer's recipe on the shapes generation set (seen kind-colour
 * pairs only, so held-out prompts stay unseen), scored by PSNR, codebook usage and the shapes judge on its
 * reconstructions. `loadOrTrainShapesVQ` caches it so chameleon and janus train it once.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint, manualSeed, saveCheckpoint, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import { imagesToTensor, type RgbImage } from '@chimera/vision-encoder';
import { SHAPES_VQ_CONFIG, VQModel, evaluateVQ, trainVQ, type VQConfig, type VQEvaluation, type VQStepHealth } from '@chimera/vq-tokenizer';
import { ShapesDataset, SPLITS, deriveSeed, generationOptions, generationSample, generationSamples, type GenerationSample } from '@chimera-examples/shapes-dataset';
import { defaultRunsDir } from '@chimera-examples/kit';
import type { Judge, JudgeScore } from '@chimera-examples/shapes-judge';

export interface TrainShapesVQOptions {
  /** Default 600. */
  steps?: number;
  /** Default 16. */
  batchSize?: number;
  /** Peak learning rate (default 2e-3). */
  learningRate?: number;
  /** Weights and training images (default 0). */
  seed?: number;
  /** Overrides of SHAPES_VQ_CONFIG (for experiments; loadOrTrainShapesVQ uses the preset). */
  config?: Partial<VQConfig>;
  metricsPath?: string;
  progress?: boolean | 'auto';
  onStep?: (metrics: StepMetrics, health: VQStepHealth) => void;
}

/** The generation set (seed 0): the images every generating example draws. */
export function generationDataset(): ShapesDataset {
  return new ShapesDataset(generationOptions());
}

/** RGB images -> pixels [B, 32, 32, 3] in [-1, 1]. */
export function toPixels(images: readonly RgbImage[]): tf.Tensor4D {
  return imagesToTensor(images, 'siglip');
}

/** Trains a fresh tokenizer on seen-pair training images. */
export async function trainShapesVQ(options: TrainShapesVQOptions = {}): Promise<VQModel> {
  const seed = options.seed ?? 0;
  const steps = options.steps ?? 600;
  const batchSize = options.batchSize ?? 16;
  const peak = options.learningRate ?? 2e-3;
  const dataset = generationDataset();
  manualSeed(seed);
  const model = new VQModel({ ...SHAPES_VQ_CONFIG, ...options.config });
  await trainVQ({
    model,
    steps,
    seed,
    optimizer: { learningRate: warmupCosineSchedule({ peak, warmupSteps: 30, totalSteps: steps, floor: peak / 10 }), weightDecay: 0 },
    restartEvery: 25,
    deadAfter: 50,
    usageWindow: 50,
    metricsPath: options.metricsPath,
    progress: options.progress,
    onStep: options.onStep,
    batchAt: (step) => {
      const images: RgbImage[] = [];
      for (let i = 0; images.length < batchSize; i++) {
        const sample = generationSample(dataset, 'train', deriveSeed(seed, (step * batchSize * 2 + i) >>> 0) % SPLITS.train.size);
        if (!sample.heldOut) images.push(sample.image);
      }
      return toPixels(images);
    },
  });
  model.eval();
  return model;
}

/** What the tokenizer keeps of held-out images. */
export interface ShapesVQReport extends VQEvaluation {
  /** The judge on the reconstructions of real held-out images (kind, colour, both). */
  judged: JudgeScore;
  /** The judge on the real images themselves, for reference. */
  judgedReal: JudgeScore;
}

/** Held-out test images of every pair (the first `count`). */
export function heldOutImages(count: number): GenerationSample[] {
  return generationSamples(generationDataset(), 'test', count, 'all');
}

/** Reconstructions of `samples` (RGB images), decoded from their codes. */
export function reconstruct(model: VQModel, samples: readonly { image: RgbImage }[]): RgbImage[] {
  return tf.tidy(() => {
    const decoded = model.decode(model.encode(toPixels(samples.map((s) => s.image))));
    const bytes = tf.round(tf.mul(tf.add(tf.clipByValue(decoded, -1, 1), 1), 127.5)).dataSync();
    const size = 32 * 32 * 3;
    return samples.map((_, i) => ({ data: Uint8Array.from(bytes.subarray(i * size, (i + 1) * size)), width: 32, height: 32 }));
  });
}

/** PSNR, usage and the judge's verdicts on `count` held-out images and their reconstructions. */
export function reportShapesVQ(model: VQModel, judge: Judge, count = 500): ShapesVQReport {
  const samples = heldOutImages(count);
  const pixels = toPixels(samples.map((s) => s.image));
  const quality = evaluateVQ(model, pixels);
  pixels.dispose();
  const judged = judge.score(reconstruct(model, samples), samples);
  const judgedReal = judge.score(samples.map((s) => s.image), samples);
  return { ...quality, judged, judgedReal };
}

/** The cached tokenizer under `dir` (default runs/shapes-vq), trained and saved on first use. */
export async function loadOrTrainShapesVQ(dir = defaultRunsDir('shapes-vq'), log: (line: string) => void = () => {}): Promise<VQModel> {
  const path = join(dir, 'vq.safetensors');
  const model = new VQModel(SHAPES_VQ_CONFIG);
  if (existsSync(path)) {
    await loadCheckpoint(model, path);
    model.eval();
    return model;
  }
  model.dispose();
  log(`training the shapes VQ tokenizer (a few minutes of CPU); it is cached in ${path}`);
  const trained = await trainShapesVQ();
  mkdirSync(dir, { recursive: true });
  await saveCheckpoint(trained, path, { metadata: { format: 'chimera-shapes-vq-1' } });
  return trained;
}
