/**
 * The language-side training stages, both through core's Trainer (AdamW, warmup + cosine, global-norm clipping):
 * text pre-training of the bare LLM on the text side of episodes (answers and ends of chunks are the loss), and
 * the fusion stage on interleaved episodes with only what `model.trainOnly(...)` left trainable learning (here
 * 'fusion': the Perceiver resampler and the cross-attention blocks). Vision pre-training (vision-pretraining.ts)
 * runs through the same runStage.
 */
import { Trainer, warmupCosineSchedule, type Module, type StepMetrics, type TrainerOptions } from '@chimera/core';
import type { ComposedModel, ComposedSample } from '@chimera/fusion';
import { causalLMLoss, type CausalLM } from '@chimera/llm';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import type { ShapesDataset } from '@chimera-examples/shapes-dataset';
import { episodeSample, textBatch, type TextBatch } from './batches';
import { makeEpisode, trainingEpisodeIndices, type EpisodeOptions } from './episodes';

export interface StageOptions {
  steps: number;
  batchSize: number;
  /** Peak learning rate (warmup over 5% of the steps, cosine decay to a tenth). */
  learningRate: number;
  /** Seeds which training episodes are drawn. */
  seed: number;
  metricsPath?: string;
  progress?: boolean | 'auto';
  onStep?: (metrics: StepMetrics) => void;
}

/**
 * Runs one stage through core's Trainer with the example's shared settings (warmup over 5% of the steps, cosine
 * to a tenth, global-norm clip 1) and returns its per-step metrics; the trainer is disposed however it ends.
 * Every stage of the example uses it, vision pre-training (vision-pretraining.ts) included.
 */
export async function runStage<M extends Module, B>(
  model: M,
  options: StageOptions,
  stage: Pick<TrainerOptions<M, B>, 'batchAt' | 'loss'> & { label: string; weightDecay: number },
): Promise<StepMetrics[]> {
  const trainer = new Trainer<M, B>({
    model,
    steps: options.steps,
    seed: options.seed,
    optimizer: {
      learningRate: warmupCosineSchedule({
        peak: options.learningRate,
        totalSteps: options.steps,
        floor: options.learningRate / 10,
      }),
      weightDecay: stage.weightDecay,
    },
    clipNorm: 1,
    metricsPath: options.metricsPath,
    progress: options.progress ?? false,
    progressLabel: stage.label,
    onStep: options.onStep,
    batchAt: stage.batchAt,
    loss: stage.loss,
  });
  try {
    return (await trainer.fit()).history;
  } finally {
    trainer.dispose();
  }
}

/** Stage 1: the LLM learns the text side of the data: which answers each question can have, and where chunks end. */
export function pretrainText(llm: CausalLM, dataset: ShapesDataset, episodes: EpisodeOptions, options: StageOptions): Promise<StepMetrics[]> {
  return runStage(llm, options, {
    label: 'text',
    weightDecay: 0,
    batchAt: (step) =>
      textBatch(trainingEpisodeIndices(options.seed, step, options.batchSize, episodes.maxImages).map((i) => makeEpisode(dataset, 'train', i, episodes))),
    loss: (m, batch: TextBatch) => causalLMLoss(m.forward({ inputIds: batch.inputIds }).logits, batch.targets, batch.mask),
  });
}

/** Stage 2: the composed model on interleaved episodes; only what `model.trainOnly(...)` left trainable learns. */
export function trainFusion(
  model: ComposedModel,
  prepare: (image: RgbImage) => PreparedImage,
  dataset: ShapesDataset,
  episodes: EpisodeOptions,
  options: StageOptions,
): Promise<StepMetrics[]> {
  return runStage(model, options, {
    label: 'fusion',
    weightDecay: 0.01,
    batchAt: (step): ComposedSample[] =>
      trainingEpisodeIndices(options.seed, step, options.batchSize, episodes.maxImages).map((i) =>
        episodeSample(makeEpisode(dataset, 'train', i, episodes), prepare),
      ),
    loss: (m, batch) => m.loss(batch),
  });
}
