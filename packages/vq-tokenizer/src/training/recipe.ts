/**
 * Training a VQ tokenizer with core's Trainer: reconstruction (L1 + L2, as LlamaGen's pixel loss without the GAN
 * and perceptual terms) plus the codebook's losses; after each step the codebook's EMA update ('ema' codebooks)
 * and, every `restartEvery` steps, dead-code restarts from the step's latents; usage, perplexity and PSNR as the
 * health metrics.
 */
import * as tf from '@tensorflow/tfjs';
import { Trainer, type AdamWOptions, type FitResult, type StepMetrics } from '@chimera/core';
import type { VQModel } from '../model/vq-model';

/** Weights of the training loss's terms. */
export interface VQLossWeights {
  /** Weight of mean |x - x'| (default 1). */
  l1?: number;
  /** Weight of mean (x - x')^2 (default 1). */
  l2?: number;
  /** Weight of the codebook + commitment terms (default 1). */
  codebook?: number;
}

/** Per-step health of the tokenizer, passed to `onStep` beside the Trainer's metrics. */
export interface VQStepHealth {
  /** Fraction of codes chosen within the last `usageWindow` steps. */
  usage: number;
  /** exp(entropy) of this step's code frequencies. */
  perplexity: number;
  /** Codes re-seeded at this step. */
  restarted: number;
}

/** Options of {@link trainVQ}. */
export interface TrainVQOptions {
  /** The tokenizer, trained in place. */
  model: VQModel;
  /** Images [B, H, W, C] in [-1, 1] of step `step` (the Trainer disposes them). */
  batchAt: (step: number) => tf.Tensor4D;
  /** Optimizer steps. */
  steps: number;
  /** AdamW settings (default: learning rate 1e-3, no weight decay). */
  optimizer?: AdamWOptions;
  /** Loss weights (default all 1). */
  weights?: VQLossWeights;
  /** Restart codes unused for `deadAfter` steps every this many steps (default 50; 0 turns restarts off). */
  restartEvery?: number;
  /** Default 100. */
  deadAfter?: number;
  /** Window of `usage` (default 100 steps). */
  usageWindow?: number;
  /** Global gradient-norm clip (default 1). */
  clipNorm?: number;
  /** Seed of the Trainer. */
  seed?: number;
  /** The Trainer's per-step JSONL metrics. */
  metricsPath?: string;
  /** The Trainer's progress bar (default false). */
  progress?: boolean | 'auto';
  /** Called after each step with the Trainer's metrics and the codebook's health. */
  onStep?: (metrics: StepMetrics, health: VQStepHealth) => void;
}

/** {@link vqTrainingLoss}'s result. */
export interface VQStepLoss {
  /** The scalar loss. */
  loss: tf.Scalar;
  /** The matched latents [B, h, w, dim] (detached). */
  latents: tf.Tensor4D;
  /** The codes [B, h, w]. */
  codes: tf.Tensor3D;
}

/** The scalar training loss of one batch, and the pieces it needs afterwards (the caller disposes them). */
export function vqTrainingLoss(model: VQModel, images: tf.Tensor4D, weights: VQLossWeights = {}): VQStepLoss {
  const out = model.forward(images, { record: true });
  const loss = tf.tidy(() => {
    const error = tf.sub(out.reconstruction, images);
    const terms = [
      tf.mul(weights.l1 ?? 1, tf.mean(tf.abs(error))),
      tf.mul(weights.l2 ?? 1, tf.mean(tf.square(error))),
      tf.mul(weights.codebook ?? 1, tf.addN([out.losses.codebook, out.losses.commitment, out.losses.entropy])),
    ];
    return tf.addN(terms) as tf.Scalar;
  });
  tf.dispose([out.reconstruction, out.losses.codebook, out.losses.commitment, out.losses.entropy]);
  return { loss, latents: out.latents, codes: out.codes };
}

/** Trains `model` in place; returns the Trainer's result. */
export async function trainVQ(options: TrainVQOptions): Promise<FitResult> {
  const { model } = options;
  const restartEvery = options.restartEvery ?? 50;
  const deadAfter = options.deadAfter ?? 100;
  const usageWindow = options.usageWindow ?? 100;
  // The last step's matched latents and codes, kept for the EMA update and restarts after the optimizer step.
  let kept: { latents: tf.Tensor4D; codes: tf.Tensor3D } | null = null;
  const release = () => {
    if (kept) tf.dispose([kept.latents, kept.codes]);
    kept = null;
  };
  const trainer = new Trainer({
    model,
    steps: options.steps,
    seed: options.seed,
    optimizer: options.optimizer ?? { learningRate: 1e-3, weightDecay: 0 },
    clipNorm: options.clipNorm ?? 1,
    metricsPath: options.metricsPath,
    progress: options.progress ?? false,
    progressLabel: 'vq',
    batchAt: (step) => options.batchAt(step),
    loss: (m, images) => {
      const { loss, latents, codes } = vqTrainingLoss(m, images, options.weights);
      release();
      kept = { latents: tf.keep(latents), codes: tf.keep(codes) };
      return loss;
    },
    onStep: (metrics) => {
      let restarted = 0;
      if (kept) {
        if (model.quantize.update === 'ema' && !metrics.skipped) model.quantize.emaUpdate(kept.latents, kept.codes);
        if (restartEvery > 0 && (metrics.step + 1) % restartEvery === 0) restarted = model.quantize.restartDeadCodes(kept.latents, deadAfter, metrics.step);
      }
      options.onStep?.(metrics, { usage: model.quantize.usage(usageWindow), perplexity: model.quantize.perplexity(), restarted });
    },
  });
  try {
    return await trainer.fit();
  } finally {
    release();
    trainer.dispose();
  }
}

/** Reconstruction quality and code use on held-out images. */
export interface VQEvaluation {
  /** Peak signal-to-noise ratio in dB, images taken as [0, 1] (from [-1, 1]). */
  psnr: number;
  /** Mean squared error in [-1, 1] units. */
  mse: number;
  /** Fraction of the codebook these images use. */
  usage: number;
  /** exp(entropy) of their code frequencies. */
  perplexity: number;
}

/** Scores `model` on `images` [N, H, W, C] in [-1, 1] (not disposed), in batches. */
export function evaluateVQ(model: VQModel, images: tf.Tensor4D, batchSize = 64): VQEvaluation {
  const counts = new Map<number, number>();
  let squared = 0;
  let values = 0;
  for (let start = 0; start < images.shape[0]; start += batchSize) {
    const size = Math.min(batchSize, images.shape[0] - start);
    const [sse, ids] = tf.tidy(() => {
      const batch = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
      const codes = model.encode(batch);
      const decoded = tf.clipByValue(model.decode(codes), -1, 1);
      return [tf.sum(tf.square(tf.sub(decoded, batch))).dataSync()[0]!, codes.dataSync()];
    }) as unknown as [number, Int32Array];
    squared += sse;
    values += size * images.shape[1] * images.shape[2] * images.shape[3];
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const mse = squared / values;
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  let entropy = 0;
  for (const c of counts.values()) entropy -= (c / total) * Math.log(c / total);
  // PSNR on [0, 1] pixels: the [-1, 1] error is twice as large, so its MSE is four times the [0, 1] one.
  return { psnr: 10 * Math.log10(1 / (mse / 4)), mse, usage: counts.size / model.codebookSize, perplexity: Math.exp(entropy) };
}
