/**
 * The whole recipe on the fine-detail shapes questions, as one function used by the training script and (smaller)
 * by the test. Four stages on one composed model, LLaVA's order with Qwen2-VL's parts:
 *
 *   vision   the ViT learns the images at their native sizes on dense patch labels (shapes-vqa's
 *            pretrainVisionTower): the stand-in for Qwen2-VL's pretrained 675M ViT. Frozen afterwards.
 *   text     the LLM alone learns the questions without the images ('llm'): the text-only baseline, scored here,
 *            and the pretrained LLM the next stages start from.
 *   stage 1  alignment: only the patch merger trains ('projector'); ViT and LLM frozen.
 *   stage 2  instruction tuning: merger and LLM ('projector+llm'; with `trainVision` the ViT too, as Qwen2-VL's
 *            second stage trains everything).
 *
 * Training images come in the seen sizes only (several sizes and aspect ratios per batch: the plugin runs each
 * size as its own ViT batch, the packer pads the rows); the held-out questions are asked about test-split images
 * of the seen sizes and, separately, of sizes and aspect ratios no training image had.
 */
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, type StepMetrics } from '@chimera/core';
import type { ComposedModel, ComposedSample, TrainableSelection } from '@chimera/fusion';
import type { PreparedImage, VisionModality } from '@chimera/vision-encoder';
import { runStage } from '@chimera-examples/kit';
import { ShapesDataset, fineDetailOptions, type FineDetailOptions, type ImageDims, type QuestionType } from '@chimera-examples/shapes-dataset';
import {
  describeScore,
  exactMatch,
  heldOutExamples,
  pretrainVisionTower,
  questionSample,
  scoreTextOnly,
  trainTextBaseline,
  trainingExamples,
  type ExactMatch,
  type Example,
  type LabelWeights,
  type PatchAccuracy,
} from '@chimera-examples/shapes-vqa';
import { FEATURE_LAYER, buildQwen2VL, type Qwen2VLSize } from './model';

export type StageName = 'text' | 'stage1' | 'stage2';
export type AllStages = 'vision' | StageName;

export interface StageSettings {
  steps: number;
  /** Peak of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Images per step (default: Qwen2VLOptions.batchSize). */
  batchSize?: number;
  /** Shapes per training image in this stage (default: the dataset's 1-3; the held-out questions keep it). */
  shapesPerImage?: { min: number; max: number };
  /** Vision stage only: weights of the patch-label sets (default shapes-vqa's DEFAULT_LABEL_WEIGHTS). */
  labelWeights?: Partial<LabelWeights>;
}

export interface Qwen2VLOptions {
  size: Qwen2VLSize;
  /** Question types trained and scored. */
  types: readonly QuestionType[];
  /** Dataset overrides (kinds, colours, shapes per image, ...) on top of the fine-detail task. */
  data?: Omit<FineDetailOptions, 'sizes'>;
  /** Training and held-out sizes (default the task's four seen sizes). */
  seenSizes?: readonly ImageDims[];
  /** Held-out sizes no training image has (default the task's three unseen sizes). */
  unseenSizes?: readonly ImageDims[];
  stages: Record<AllStages, StageSettings>;
  /** Stage 2 also trains the ViT (default false: frozen, as LLaVA and Qwen2-VL's last stage). */
  trainVision?: boolean;
  batchSize: number;
  /** Seeds the weights and the training questions; the held-out questions do not depend on it. */
  seed: number;
  /** Held-out questions per type, for the seen and for the unseen sizes. */
  heldOutPerType: number;
  unseenPerType?: number;
  /** Save the pretrained ViT here after the vision stage (the checkpoint check rebuilds the model from it). */
  visionTowerPath?: string;
  /** Load the pretrained ViT from this file (an earlier run's visionTowerPath) instead of the vision stage. */
  visionTowerFrom?: string;
  /** Folder for the per-step JSONL metrics (metrics-<stage>.jsonl); none by default. */
  metricsDir?: string;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface StageReport {
  name: StageName;
  /** What the stage trained (its freezing selection). */
  trainable: string;
  trainableParameters: number;
  steps: number;
  seconds: number;
  /** CPU seconds of this process in the stage (user + system; above the wall time when threads help). */
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

export interface VisionReport {
  steps: number;
  seconds: number;
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
  /** Kind and colour accuracy of the patch labels on validation images (null when the tower was loaded). */
  accuracy: PatchAccuracy | null;
  loadedFrom?: string;
}

/** Scores of one model on both held-out sets. */
export interface HeldOutScores {
  seen: ExactMatch;
  unseen: ExactMatch;
}

export interface Qwen2VLResult {
  /** The trained model (the caller disposes it). */
  model: ComposedModel;
  image: VisionModality;
  heldOut: { seen: Example[]; unseen: Example[] };
  /** The held-out images, prepared once, in the same order. */
  heldOutImages: { seen: PreparedImage[]; unseen: PreparedImage[] };
  vision: VisionReport;
  visionTowerPath?: string;
  baseline: HeldOutScores;
  afterStage1: HeldOutScores;
  final: HeldOutScores;
  stages: StageReport[];
  parameterCount: number;
}

/** Each stage draws its own training scenes: a disjoint range of steps of the seeded stream. */
const STEP_OFFSET: Record<StageName, number> = { text: 0, stage1: 1_000_000, stage2: 2_000_000 };

export function stage2Selection(trainVision: boolean): TrainableSelection {
  return trainVision ? ['image.projector', 'llm', 'image.encoder'] : 'projector+llm';
}

export async function runQwen2VL(options: Qwen2VLOptions): Promise<Qwen2VLResult> {
  const log = options.log ?? (() => {});
  const { size, seed, types } = options;
  const datasetFor = (sizes: readonly ImageDims[], overrides: Omit<FineDetailOptions, 'sizes'> = {}) =>
    new ShapesDataset(fineDetailOptions({ ...options.data, ...overrides, sizes }));
  const seenSizes = options.seenSizes ?? fineDetailOptions({ sizes: 'seen' }).imageSizes!;
  const unseenSizes = options.unseenSizes ?? fineDetailOptions({ sizes: 'unseen' }).imageSizes!;
  const seen = datasetFor(seenSizes);
  const unseen = datasetFor(unseenSizes);
  const { model, image } = buildQwen2VL(size, seed);
  try {
    const heldOut = { seen: heldOutExamples(seen, types, options.heldOutPerType), unseen: heldOutExamples(unseen, types, options.unseenPerType ?? options.heldOutPerType) };
    const heldOutImages = { seen: heldOut.seen.map((e) => image.prepare(e.image)), unseen: heldOut.unseen.map((e) => image.prepare(e.image)) };
    const score = async (withImage: boolean): Promise<HeldOutScores> => ({
      seen: withImage ? await exactMatch(model, heldOut.seen, heldOutImages.seen) : await scoreTextOnly(model, heldOut.seen),
      unseen: withImage ? await exactMatch(model, heldOut.unseen, heldOutImages.unseen) : await scoreTextOnly(model, heldOut.unseen),
    });
    const describe = (s: HeldOutScores) => `seen sizes ${describeScore(s.seen, types)}; unseen ${describeScore(s.unseen, types)}`;
    const metricsPath = (name: AllStages) => (options.metricsDir ? join(options.metricsDir, `metrics-${name}.jsonl`) : undefined);
    const batchOf = (settings: StageSettings) => settings.batchSize ?? options.batchSize;

    // vision
    let vision: VisionReport;
    if (options.visionTowerFrom) {
      await loadCheckpoint(image.encoder!, options.visionTowerFrom);
      log(`vision: loaded the pretrained ViT from ${options.visionTowerFrom} (vision stage skipped)`);
      vision = { steps: 0, seconds: 0, cpuSeconds: 0, firstLoss: null, lastLoss: null, accuracy: null, loadedFrom: options.visionTowerFrom };
    } else {
      const settings = options.stages.vision;
      log(`vision: trains the ViT (image.encoder) on dense patch labels at native sizes, ${settings.steps} steps of ${batchOf(settings)} images`);
      const timer = stageTimer();
      const pretrained = await pretrainVisionTower(image.encoder!, {
        dataset: settings.shapesPerImage ? datasetFor(seenSizes, { shapesPerImage: settings.shapesPerImage }) : seen,
        prepare: (picture) => image.prepare(picture),
        steps: settings.steps,
        learningRate: settings.learningRate,
        batchSize: batchOf(settings),
        seed,
        featureLayer: FEATURE_LAYER,
        labelWeights: settings.labelWeights,
        metricsPath: metricsPath('vision'),
        progress: options.progress,
      });
      vision = { ...timer.stop(pretrained.history), steps: settings.steps, accuracy: pretrained.accuracy };
      const acc = pretrained.accuracy;
      log(`vision: ${describeTime(vision)}, loss ${fmtLoss(vision.firstLoss)} -> ${fmtLoss(vision.lastLoss)}; validation shape patches: kind ${pct(acc?.kind)}, colour ${pct(acc?.color)}`);
    }
    if (options.visionTowerPath) await saveCheckpoint(image.encoder!, options.visionTowerPath);

    const stages: StageReport[] = [];
    // text: the baseline, and the LLM the image stages start from
    let baseline: HeldOutScores;
    {
      const settings = options.stages.text;
      log(`text: trains 'llm' on the questions without the image, ${settings.steps} steps of ${batchOf(settings)}`);
      const timer = stageTimer();
      const result = await trainTextBaseline(model, {
        dataset: seen,
        types,
        heldOut: heldOut.seen,
        steps: settings.steps,
        learningRate: settings.learningRate,
        batchSize: batchOf(settings),
        seed,
        stepOffset: STEP_OFFSET.text,
        metricsPath: metricsPath('text'),
        progress: options.progress,
      });
      const report: StageReport = { name: 'text', trainable: "'llm' (text only, no image)", trainableParameters: model.summary().trainableParameters, steps: settings.steps, ...timer.stop(result.history) };
      stages.push(report);
      log(`text: ${describeTime(report)}, loss ${fmtLoss(report.firstLoss)} -> ${fmtLoss(report.lastLoss)}`);
      baseline = { seen: result.score, unseen: await scoreTextOnly(model, heldOut.unseen) };
    }
    log(`text-only baseline: ${describe(baseline)}`);

    const imageStage = async (name: 'stage1' | 'stage2', selection: TrainableSelection, label: string): Promise<HeldOutScores> => {
      const settings = options.stages[name];
      const summary = model.trainOnly(selection);
      const dataset = settings.shapesPerImage ? datasetFor(seenSizes, { shapesPerImage: settings.shapesPerImage }) : seen;
      log(`${name}: trains ${label}, ${summary.trainableParameters.toLocaleString('en-US')} parameters, ${settings.steps} steps of ${batchOf(settings)}`);
      const timer = stageTimer();
      const history =
        settings.steps > 0
          ? await runStage<ComposedModel, ComposedSample[]>(
              model,
              { steps: settings.steps, learningRate: settings.learningRate, seed, metricsPath: metricsPath(name), progress: options.progress },
              {
                label: name,
                weightDecay: 0,
                batchAt: (step) =>
                  trainingExamples(dataset, seed, STEP_OFFSET[name] + step, batchOf(settings), types).map((e) => questionSample(e, image.prepare(e.image), true)),
                loss: (m, batch) => m.loss(batch),
              },
            )
          : [];
      const report: StageReport = { name, trainable: label, trainableParameters: summary.trainableParameters, steps: settings.steps, ...timer.stop(history) };
      stages.push(report);
      const scores = await score(true);
      log(`${name}: ${describeTime(report)}, loss ${fmtLoss(report.firstLoss)} -> ${fmtLoss(report.lastLoss)}; held-out ${describe(scores)}`);
      return scores;
    };
    const afterStage1 = await imageStage('stage1', 'projector', "'projector' (the patch merger)");
    const trainVision = options.trainVision ?? false;
    const final = await imageStage('stage2', stage2Selection(trainVision), trainVision ? "'projector+llm' + image.encoder" : "'projector+llm'");

    return {
      model,
      image,
      heldOut,
      heldOutImages,
      vision,
      visionTowerPath: options.visionTowerPath,
      baseline,
      afterStage1,
      final,
      stages,
      parameterCount: model.summary().totalParameters,
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Wall and CPU seconds of a stage, with its first and last loss. */
function stageTimer() {
  const start = performance.now();
  const cpu = process.cpuUsage();
  return {
    stop(history: readonly StepMetrics[]) {
      const used = process.cpuUsage(cpu);
      return {
        seconds: (performance.now() - start) / 1000,
        cpuSeconds: (used.user + used.system) / 1e6,
        firstLoss: history[0]?.loss ?? null,
        lastLoss: history.at(-1)?.loss ?? null,
      };
    },
  };
}

function describeTime(t: { seconds: number; cpuSeconds: number }): string {
  return `${t.seconds.toFixed(1)} s (${t.cpuSeconds.toFixed(1)} s CPU)`;
}

function fmtLoss(loss: number | null): string {
  return loss === null ? 'n/a' : loss.toFixed(3);
}

function pct(value: number | undefined): string {
  return value === undefined ? 'n/a' : `${(100 * value).toFixed(1)}%`;
}
