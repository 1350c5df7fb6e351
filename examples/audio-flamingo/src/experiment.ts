/**
 * One run of the tiny Audio Flamingo, end to end:
 * 1. pre-train a small LLM on the text side of the episodes and score it on the held-out clips: the text-only
 *    baseline;
 * 2. pre-train the audio encoder (windows, window encoder, 2x pooling) to name each clip's attribute; it stays
 *    frozen, and both frozen parts are saved;
 * 3. Audio Flamingo: compose them with a Perceiver and gated cross-attention (zero gates: the LLM's answers at
 *    init), train only the fusion parts, score the held-out clips;
 * 4. early fusion: the same saved LLM and encoder, loaded afresh, joined by a projector that splices the pooled
 *    encoder tokens at `<audio>`; train what `earlyTrain` names, score the same clips.
 * Used by the training script and, with small settings, by the test.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, type StepMetrics } from '@chimera/core';
import type { ComposedModel, ModelSummary } from '@chimera/fusion';
import type { AudioModality } from '@chimera/audio-encoder';
import { QUESTION_TYPES, SoundsDataset, type QuestionType, type SoundsOptions } from '@chimera-examples/sounds-dataset';
import { ClipBank, type Clip } from './data';
import { evaluateComposed, evaluateTextOnly, type Scores } from './evaluate';
import { DEFAULT_SIZE, buildAudio, buildLLM, composeEarly, composeFlamingo, type AudioFlamingoSize } from './model';
import { withFrozenFeatures } from './frozen-features';
import { pretrainAudio, pretrainText, trainFusion, type StageOptions } from './training';

export type StageSettings = Pick<StageOptions, 'steps' | 'batchSize' | 'learningRate'>;

export interface ExperimentOptions {
  size?: Partial<AudioFlamingoSize>;
  data?: SoundsOptions;
  /** Training clips drawn from: the first `trainPool` of the train split (features computed once each). */
  trainPool: number;
  pretrain: StageSettings;
  audioPretrain: StageSettings;
  fusion: StageSettings;
  /** The early-fusion recipe (skipped when absent) and what it trains: 'fusion' (the projector) or 'projector+llm'. */
  early?: StageSettings & { train?: 'fusion' | 'projector+llm' };
  seed: number;
  testClips: number;
  validationClips?: number;
  /** Folder for llm.safetensors and audio.safetensors (the frozen parts after pre-training). */
  checkpointDir: string;
  metricsDir?: string;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface ExperimentResult {
  model: ComposedModel;
  audio: AudioModality;
  early: { model: ComposedModel; audio: AudioModality; scores: Scores; summary: ModelSummary; history: StepMetrics[] } | null;
  bank: ClipBank;
  size: AudioFlamingoSize;
  testSet: Clip[];
  textOnly: Scores;
  composedAtInit: Scores;
  trained: Scores;
  summary: ModelSummary;
  audioAccuracy: Record<string, number>;
  histories: { pretrain: StepMetrics[]; audio: StepMetrics[]; fusion: StepMetrics[] };
  seconds: Record<string, number>;
  paths: { llm: string; audio: string };
}

export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const size: AudioFlamingoSize = { ...DEFAULT_SIZE, ...options.size };
  const bank = new ClipBank(new SoundsDataset(options.data), size.melBins);
  const { seed } = options;
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, work: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      seconds[name] = (seconds[name] ?? 0) + (performance.now() - start) / 1000;
    }
  };
  const stage = (settings: StageSettings, stageSeed: number, name: string): StageOptions => ({
    ...settings,
    seed: stageSeed,
    pool: options.trainPool,
    progress: options.progress,
    metricsPath: options.metricsDir ? join(options.metricsDir, `${name}-metrics.jsonl`) : undefined,
  });

  // Features once per clip: the training pool, the held-out test clips and the validation clips.
  const { testSet, validationSet } = await timed('features', () => {
    bank.clips('train', range(options.trainPool));
    return { testSet: bank.clips('test', range(options.testClips)), validationSet: bank.clips('validation', range(options.validationClips ?? 140)) };
  });
  log(`features: ${bank.size} clips to log-mel (${options.trainPool} training, ${testSet.length} test, ${validationSet.length} validation)  [${elapsed().toFixed(0)} s]`);

  // Stage 1: the LLM on text alone.
  const llm = buildLLM(size, seed);
  log(`stage 1: text pre-training of the LLM (${llm.countParameters().toLocaleString('en-US')} parameters), ${options.pretrain.steps} steps of ${options.pretrain.batchSize}`);
  const pretrainHistory = await timed('text', () => pretrainText(llm, bank, stage(options.pretrain, seed, 'pretrain')));
  const paths = { llm: join(options.checkpointDir, 'llm.safetensors'), audio: join(options.checkpointDir, 'audio.safetensors') };
  mkdirSync(options.checkpointDir, { recursive: true });
  await saveCheckpoint(llm, paths.llm);
  const textOnly = await timed('evaluation', () => evaluateTextOnly(llm, testSet));
  log(`text-only baseline: ${describe(textOnly)}  [${elapsed().toFixed(0)} s]`);

  // Stage 2: the audio encoder.
  const audio = buildAudio(size, seed + 1);
  log(`stage 2: audio pre-training (encoder ${audio.encoder.countParameters().toLocaleString('en-US')} + window encoder ${audio.windowEncoder!.countParameters().toLocaleString('en-US')} parameters), ${options.audioPretrain.steps} steps of ${options.audioPretrain.batchSize} clips`);
  const pretrained = await timed('audio', () => pretrainAudio(audio, bank, stage(options.audioPretrain, seed + 4, 'audio'), validationSet));
  await saveCheckpoint(audio.module, paths.audio);
  log(`audio encoder, held-out attribute accuracy of its throwaway head: ${Object.entries(pretrained.accuracy).map(([t, a]) => `${t} ${percent(a)}`).join(', ')}  [${elapsed().toFixed(0)} s]`);

  // Stage 3: Audio Flamingo.
  const model = composeFlamingo(llm, withFrozenFeatures(audio), size, seed + 2);
  const summary = model.trainOnly('fusion');
  log(summary.table);
  const probe = testSet.slice(0, 32);
  const composedAtInit = await timed('evaluation', () => evaluateComposed(model, audio, probe));
  const same = composedAtInit.predictions.filter((p, i) => p.answer === textOnly.predictions[i]!.answer).length;
  log(`composed at init (zero gates): ${same}/${probe.length} held-out answers equal the text-only LLM's`);
  log(`stage 3: Audio Flamingo fusion training (Perceiver + gated cross-attention), ${options.fusion.steps} steps of ${options.fusion.batchSize}`);
  const fusionHistory = await timed('fusion', () => trainFusion(model, audio, bank, stage(options.fusion, seed + 3, 'fusion'), 'fusion'));
  const trained = await timed('evaluation', () => evaluateComposed(model, audio, testSet));
  log(`Audio Flamingo: ${describe(trained)}  [${elapsed().toFixed(0)} s]`);

  // Stage 4: early fusion from the same saved frozen parts.
  let early: ExperimentResult['early'] = null;
  if (options.early) {
    const freshLLM = buildLLM(size, seed + 100);
    await loadCheckpoint(freshLLM, paths.llm);
    const freshAudio = buildAudio(size, seed + 101);
    await loadCheckpoint(freshAudio.module, paths.audio);
    const earlyModel = composeEarly(freshLLM, withFrozenFeatures(freshAudio), seed + 5);
    const earlySummary = earlyModel.trainOnly(options.early.train ?? 'fusion');
    log(`stage 4: early fusion (pooled tokens at <audio>, training ${options.early.train ?? 'fusion'}), ${options.early.steps} steps of ${options.early.batchSize}`);
    const history = await timed('early', () => trainFusion(earlyModel, freshAudio, bank, stage(options.early!, seed + 6, 'early'), 'early'));
    const scores = await timed('evaluation', () => evaluateComposed(earlyModel, freshAudio, testSet));
    log(`early fusion: ${describe(scores)}  [${elapsed().toFixed(0)} s]`);
    early = { model: earlyModel, audio: freshAudio, scores, summary: earlySummary, history };
  }
  seconds.total = elapsed();
  return {
    model,
    audio,
    early,
    bank,
    size,
    testSet,
    textOnly,
    composedAtInit,
    trained,
    summary,
    audioAccuracy: pretrained.accuracy,
    histories: { pretrain: pretrainHistory, audio: pretrained.history, fusion: fusionHistory },
    seconds,
    paths,
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}

export function describe(scores: Scores): string {
  return `${percent(scores.accuracy)} (${QUESTION_TYPES.filter((t) => scores.byType[t]).map((t: QuestionType) => `${t} ${percent(scores.byType[t]!.accuracy)}`).join(', ')})`;
}
