/**
 * The language-side training stages, both through core's Trainer (AdamW, warmup + cosine, global-norm clipping):
 * text pre-training of the bare LLM on the text side of episodes (answers and ends of chunks are the loss), and
 * the fusion stage on interleaved episodes with only what `model.trainOnly(...)` left trainable learning (here
 * 'fusion': the Perceiver resampler and the cross-attention blocks). Every stage, vision pre-training
 * (vision-pretraining.ts) included, runs through the examples' shared runStage (warmup over 5% of the steps,
 * cosine to a tenth, global-norm clip 1).
 */
import type { StepMetrics } from '@chimera/core';
import { runStage, type StageRunOptions } from '@chimera-examples/kit';
import type { ComposedModel, ComposedSample } from '@chimera/fusion';
import { causalLMLoss, type CausalLM } from '@chimera/llm';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import type { ShapesDataset } from '@chimera-examples/shapes-dataset';
import { episodeSample, textBatch, type TextBatch } from './batches';
import { makeEpisode, trainingEpisodeIndices, type EpisodeOptions } from './episodes';

export interface StageOptions extends StageRunOptions {
  batchSize: number;
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
