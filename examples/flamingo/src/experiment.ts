/**
 * One run of the tiny Flamingo, end to end:
 * 1. pre-train a small LLM on the text side of the episodes (questions and answers with `<image>` markers, no
 *    pixels), and score it on the held-out episodes: the text-only baseline;
 * 2. pre-train the ViT to name each image's shape kind and colour (vision-pretraining.ts); it stays frozen;
 * 3. compose the two with a Perceiver resampler and gated cross-attention; check that the composed model's
 *    logits equal the LLM's exactly (zero gates);
 * 4. freeze the LLM and the ViT and train the fusion parts ('fusion' preset: resampler and cross-attention
 *    blocks), then score the same held-out episodes by generation with cached media keys/values.
 * Used by the training script and, with small settings, by the test.
 */
import * as tf from '@tensorflow/tfjs';
import { saveCheckpoint, type StepMetrics } from '@chimera/core';
import type { ComposedModel, ModelSummary } from '@chimera/fusion';
import type { PreparedImage, RgbImage, VisionModality } from '@chimera/vision-encoder';
import { QUESTION_TYPES, ShapesDataset, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import { episodeSample, textBatch } from './batches';
import { makeEpisode, type Episode, type EpisodeOptions } from './episodes';
import { evaluateComposed, evaluateTextOnly, type Scores } from './evaluate';
import { DEFAULT_SIZE, buildLLM, buildVision, composeFlamingo, type FlamingoSize } from './model';
import { pretrainText, trainFusion } from './training';
import { pretrainVision } from './vision-pretraining';

export interface StageSettings {
  steps: number;
  batchSize: number;
  /** Peak learning rate. */
  learningRate: number;
}

export interface ExperimentOptions {
  size?: Partial<FlamingoSize>;
  /** The generated scenes (imageSize comes from the model size; vision pre-training needs one shape per image). */
  data?: Omit<ShapesOptions, 'imageSize'>;
  episodes?: Partial<EpisodeOptions>;
  /** Stage 1: the LLM on the text side of the episodes. */
  pretrain: StageSettings;
  /** Stage 2: the ViT on shape kinds and colours. */
  visionPretrain: StageSettings;
  /** Stage 4: the resampler and the cross-attention blocks. */
  fusion: StageSettings;
  /** Seeds every weight and which training examples are drawn; held-out episodes do not depend on it. */
  seed: number;
  /** Held-out (test split) episodes scored at the end. */
  testEpisodes: number;
  /** Score this many validation episodes every `evalEvery` fusion steps (default 0: never). */
  evalEvery?: number;
  validationEpisodes?: number;
  /** Where to save the frozen parts after their pre-training (full checkpoints): the LLM and the ViT. */
  checkpoints?: { llm?: string; vision?: string };
  /** Per-step JSONL metrics of the three training stages. */
  metricsPaths?: { pretrain?: string; vision?: string; fusion?: string };
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

/** Every question type that applies, some two-image episodes. */
export const DEFAULT_EPISODES: EpisodeOptions = { types: QUESTION_TYPES, multiImageFraction: 0.3, maxImages: 2 };

export interface EvalPoint {
  step: number;
  seconds: number;
  loss: number | null;
  accuracy: number;
}

export interface ExperimentResult {
  /** The trained composed model (the caller disposes it). */
  model: ComposedModel;
  image: VisionModality;
  prepare: (image: RgbImage) => PreparedImage;
  dataset: ShapesDataset;
  size: FlamingoSize;
  episodes: EpisodeOptions;
  testSet: Episode[];
  /** The pre-trained LLM alone on the held-out episodes: the text-only baseline. */
  textOnly: Scores;
  /** The composed model before fusion training on the first held-out episodes (zero gates: the LLM's answers). */
  composedAtInit: Scores;
  /** The composed model after fusion training. */
  trained: Scores;
  /** Largest |composed - LLM| logit over real positions of held-out episodes at init (0 when exact). */
  identityMaxDiff: number;
  summary: ModelSummary;
  pretrainHistory: StepMetrics[];
  visionHistory: StepMetrics[];
  fusionHistory: StepMetrics[];
  evals: EvalPoint[];
  /** Held-out accuracy of the pre-trained ViT's throwaway heads on validation images. */
  visionAccuracy: { kind: number; color: number };
  /** Wall seconds per stage. */
  seconds: { pretrain: number; vision: number; fusion: number; evaluation: number; total: number };
}

export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const log = options.log ?? (() => {});
  const startedAt = performance.now();
  const elapsed = () => (performance.now() - startedAt) / 1000;
  const size: FlamingoSize = { ...DEFAULT_SIZE, ...options.size };
  const episodes: EpisodeOptions = { ...DEFAULT_EPISODES, ...options.episodes };
  const dataset = new ShapesDataset({ ...defaultData(size.imageSize), ...options.data, imageSize: size.imageSize });
  const { seed } = options;
  const testSet = Array.from({ length: options.testEpisodes }, (_, i) => makeEpisode(dataset, 'test', i, episodes));
  const validationSet = Array.from({ length: options.validationEpisodes ?? 128 }, (_, i) => makeEpisode(dataset, 'validation', i, episodes));
  let evaluationSeconds = 0;
  const timed = async <T>(work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      evaluationSeconds += (performance.now() - start) / 1000;
    }
  };

  // Stage 1: the LLM on text alone.
  const llm = buildLLM(size, seed);
  log(`stage 1/4: text pre-training of the LLM (${llm.countParameters().toLocaleString('en-US')} parameters), ${options.pretrain.steps} steps of ${options.pretrain.batchSize} episodes`);
  let start = performance.now();
  const pretrainHistory = await pretrainText(llm, dataset, episodes, {
    ...options.pretrain,
    seed,
    metricsPath: options.metricsPaths?.pretrain,
    progress: options.progress,
  });
  const pretrainSeconds = (performance.now() - start) / 1000;
  if (options.checkpoints?.llm) await saveCheckpoint(llm, options.checkpoints.llm);
  const textOnly = await timed(() => evaluateTextOnly(llm, testSet));
  log(`text-only baseline (the pre-trained LLM): ${percent(textOnly.accuracy)} held-out exact match (${describeTypes(textOnly)})  [${elapsed().toFixed(0)} s]`);
  const probe = testSet.slice(0, 64);
  const llmLogits = tf.tidy(() => llm.forward({ inputIds: textBatch(probe).inputIds }).logits);

  // Stage 2: the vision encoder.
  const image = buildVision(size, seed + 1);
  const prepare = (raw: RgbImage) => image.prepare(raw);
  log(`stage 2/4: vision pre-training of the ViT (${image.encoder!.countParameters().toLocaleString('en-US')} parameters) on shape kinds and colours, ${options.visionPretrain.steps} steps of ${options.visionPretrain.batchSize} images`);
  start = performance.now();
  const vision = await pretrainVision(image.encoder!, dataset, prepare, {
    ...options.visionPretrain,
    seed: seed + 4,
    metricsPath: options.metricsPaths?.vision,
    progress: options.progress,
  });
  const visionSeconds = (performance.now() - start) / 1000;
  if (options.checkpoints?.vision) await saveCheckpoint(image.encoder!, options.checkpoints.vision);
  log(`vision encoder: held-out kind ${percent(vision.accuracy.kind)}, colour ${percent(vision.accuracy.color)} (linear heads on the mean patch feature)  [${elapsed().toFixed(0)} s]`);

  // Stage 3: compose; the zero gates must leave the LLM's logits untouched.
  const model = composeFlamingo(llm, image, size, seed + 2);
  const identityMaxDiff = maxRealDiff(llmLogits, model, probe, prepare);
  llmLogits.dispose();
  const summary = model.trainOnly('fusion');
  log(`stage 3/4: composed; identity at init: max |composed - LLM| logit over ${probe.length} held-out episodes = ${identityMaxDiff}`);
  log(summary.table);
  const composedAtInit = await timed(() => evaluateComposed(model, prepare, probe));
  const sameAtInit = composedAtInit.predictions.filter((p, i) => p.answer === textOnly.predictions[i]!.answer).length;
  log(`composed model before fusion training: ${sameAtInit}/${probe.length} held-out answers equal the text-only LLM's`);

  // Stage 4: fusion training, the LLM and the ViT frozen.
  log(`stage 4/4: fusion training (resampler + cross-attention), ${options.fusion.steps} steps of ${options.fusion.batchSize} episodes`);
  const evals: EvalPoint[] = [];
  const every = options.evalEvery ?? 0;
  start = performance.now();
  let evalInFusion = 0;
  const fusionHistory = await trainFusion(model, prepare, dataset, episodes, {
    ...options.fusion,
    seed: seed + 3,
    metricsPath: options.metricsPaths?.fusion,
    progress: options.progress,
    onStep: (metrics) => {
      const done = metrics.step + 1;
      if (every > 0 && (done % every === 0 || done === options.fusion.steps)) {
        // Async generation cannot run inside the Trainer's synchronous callback: score with teacher forcing here.
        const evalStart = performance.now();
        const accuracy = answerAccuracy(model, prepare, validationSet);
        evalInFusion += (performance.now() - evalStart) / 1000;
        const point = { step: done, seconds: elapsed(), loss: metrics.loss, accuracy };
        evals.push(point);
        log(`  step ${String(done).padStart(4)}/${options.fusion.steps}  loss ${metrics.loss?.toFixed(4) ?? 'NaN'}  validation answer accuracy ${percent(accuracy)}  [${point.seconds.toFixed(0)} s]`);
      }
    },
  });
  const fusionSeconds = (performance.now() - start) / 1000 - evalInFusion;
  evaluationSeconds += evalInFusion;
  const trained = await timed(() => evaluateComposed(model, prepare, testSet));
  log(`Flamingo: ${percent(trained.accuracy)} held-out exact match (${describeTypes(trained)})  [${elapsed().toFixed(0)} s]`);
  return {
    model,
    image,
    prepare,
    dataset,
    size,
    episodes,
    testSet,
    textOnly,
    composedAtInit,
    trained,
    identityMaxDiff,
    summary,
    pretrainHistory,
    visionHistory: vision.history,
    fusionHistory,
    evals,
    visionAccuracy: vision.accuracy,
    seconds: { pretrain: pretrainSeconds, vision: visionSeconds, fusion: fusionSeconds, evaluation: evaluationSeconds, total: elapsed() },
  };
}

/**
 * One-shape scenes (vision pre-training names the shape of each image) with shapes 30-60% of the side, as
 * examples/vit-shapes: at 24 px the dataset's default 22-45% makes kinds slow to learn.
 */
function defaultData(imageSize: number): Omit<ShapesOptions, 'imageSize'> {
  return { shapesPerImage: 1, shapeSize: { min: 0.3 * imageSize, max: 0.6 * imageSize } };
}

/** Largest |difference| of the composed model's logits from `reference` (the LLM's) at real positions. */
function maxRealDiff(reference: tf.Tensor, model: ComposedModel, probe: readonly Episode[], prepare: (image: RgbImage) => PreparedImage): number {
  const output = model.forward(probe.map((e) => episodeSample(e, prepare)));
  try {
    return tf.tidy(() => tf.max(tf.mul(tf.abs(tf.sub(output.logits, reference)), tf.expandDims(output.paddingMask, 2))).dataSync()[0]!);
  } finally {
    tf.dispose(output);
  }
}

/**
 * Fraction of episodes whose last answer is the argmax of the model's logits at its position (teacher forcing):
 * a cheap synchronous proxy of exact match for progress lines.
 */
export function answerAccuracy(model: ComposedModel, prepare: (image: RgbImage) => PreparedImage, episodes: readonly Episode[], batchSize = 64): number {
  let correct = 0;
  for (let start = 0; start < episodes.length; start += batchSize) {
    const batch = episodes.slice(start, start + batchSize);
    const output = model.forward(batch.map((e) => episodeSample(e, prepare)));
    try {
      const predicted = tf.tidy(() => tf.argMax(output.logits, 2).arraySync() as number[][]);
      batch.forEach((episode, i) => {
        // The row is <bos> (<image> q a <eoc>)*: the last answer sits two from the end, predicted one before it.
        const length = 1 + episode.chunks.reduce((n, c) => n + c.questionIds.length + 3, 0);
        if (predicted[i]![length - 3] === episode.chunks.at(-1)!.answerId) correct++;
      });
    } finally {
      tf.dispose(output);
    }
  }
  return correct / episodes.length;
}

export function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}

function describeTypes(scores: Scores): string {
  return Object.entries(scores.byType)
    .map(([type, s]) => `${type} ${percent(s!.accuracy)}`)
    .join(', ');
}
