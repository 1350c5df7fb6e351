/**
 * The whole Fuyu recipe on the fine-detail shapes questions, as one function used by the training script and
 * (smaller) by the test. Two phases run through core's Trainer on one composed model:
 *
 *   text   the decoder alone learns the questions without the images ('llm'). Scored then, it is the text-only
 *          baseline (same questions and answers, same size); it is also the language prior the next phase
 *          starts from.
 *   image  everything trains ('all': the patch Linear, the row break and the whole decoder), as in Fuyu, which
 *          has no frozen encoder. The decoder has to learn what a square looks like from raw pixels, through
 *          the answers alone.
 *
 * Training images come in the task's seen sizes; held-out questions are scored on seen and on unseen sizes.
 */
import { join } from 'node:path';
import type { StepMetrics } from '@chimera/core';
import type { ComposedModel, ComposedSample } from '@chimera/fusion';
import type { PreparedImage, VisionModality } from '@chimera/vision-encoder';
import { runStage } from '@chimera-examples/kit';
import { ShapesDataset, fineDetailOptions, type FineDetailOptions, type ImageDims, type QuestionType, type Range } from '@chimera-examples/shapes-dataset';
import {
  conversationSample,
  conversationTurns,
  describeScore,
  exactMatch,
  heldOutExamples,
  questionSample,
  trainTextBaseline,
  trainingExamples,
  type Example,
  type ExactMatch,
} from '@chimera-examples/shapes-vqa';
import { buildFuyu, type FuyuSize } from './model';

export interface PhaseSettings {
  steps: number;
  /** Peak of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Images per step (default FuyuOptions.batchSize). */
  batchSize?: number;
}

export interface ImagePhaseSettings extends PhaseSettings {
  /**
   * A curriculum: the first `curriculum.steps` steps show other images (by default small ones with one shape:
   * few tokens, so cheap steps, and nothing to look up, so the only thing to learn is what a shape looks like),
   * the rest the task's (default: none).
   */
  curriculum?: Curriculum;
  /** Questions per training image, each about another shape (shapes-vqa's conversationTurns; default 1). */
  turns?: number;
  /** Keep the patch Linear and row break frozen for the phase (default false: everything trains, as Fuyu). */
  freezePatches?: boolean;
}

export interface Curriculum {
  steps: number;
  /** Image sizes (default CURRICULUM_SIZES). */
  sizes?: readonly ImageDims[];
  /** Shapes per image (default 1). */
  shapesPerImage?: Range;
  /** Question types (default the run's). */
  types?: readonly QuestionType[];
}

/** The curriculum's default images: a few 16-pixel patches a side, so a shape fills a good part of the image. */
export const CURRICULUM_SIZES: readonly ImageDims[] = [
  { width: 32, height: 32 },
  { width: 48, height: 32 },
  { width: 32, height: 48 },
  { width: 48, height: 48 },
];

/** The fine-detail task as it is (the defaults), or changed for a reduced run. */
export interface TaskOptions extends Omit<FineDetailOptions, 'sizes' | 'shapesPerImage'> {
  /** Training (and seen held-out) sizes (default FINE_DETAIL_SEEN_SIZES). */
  seenSizes?: readonly ImageDims[];
  /** Held-out sizes never trained on (default FINE_DETAIL_UNSEEN_SIZES). */
  unseenSizes?: readonly ImageDims[];
}

export interface FuyuOptions {
  size: FuyuSize;
  /** Changes to the fine-detail task (none by default). */
  task?: TaskOptions;
  /** Question types trained and scored. */
  types: readonly QuestionType[];
  /** Shapes per image (training and held-out). */
  shapesPerImage: Range;
  text: PhaseSettings;
  image: ImagePhaseSettings;
  batchSize: number;
  /** Seeds the weights and the training questions; the held-out questions do not depend on it. */
  seed: number;
  /** Held-out questions per type on the seen sizes, and on the unseen sizes. */
  heldOutPerType: number;
  unseenPerType: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Folder for the Trainer's per-step JSONL metrics (metrics-<phase>.jsonl); none by default. */
  metricsDir?: string;
  /** Trainer's progress bar on stderr (default false). */
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface PhaseReport {
  name: 'text' | 'image';
  /** The freezing selection the phase trained with. */
  trainable: string;
  trainableParameters: number;
  steps: number;
  /** Wall seconds in training steps. */
  seconds: number;
  /** CPU seconds of this process in the phase (on an idle machine about the wall time). */
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

export interface FuyuResult {
  /** The trained model (the caller disposes it). */
  model: ComposedModel;
  image: VisionModality;
  heldOut: { seen: Example[]; unseen: Example[] };
  /** The held-out images, prepared once, in the order of `heldOut`. */
  heldOutImages: { seen: PreparedImage[]; unseen: PreparedImage[] };
  /** The text-only baseline's score on the seen and unseen held-out questions (after the text phase). */
  baseline: { seen: ExactMatch; unseen: ExactMatch };
  /** The model's score after the image phase. */
  final: { seen: ExactMatch; unseen: ExactMatch };
  phases: PhaseReport[];
  parameterCount: number;
}

/** Fine-detail datasets: training images of the seen sizes, held-out of seen and unseen sizes, and the curriculum's. */
export function fineDetailDatasets(
  shapesPerImage: Range,
  task: TaskOptions = {},
  curriculum: Omit<Curriculum, 'steps'> = {},
): { seen: ShapesDataset; unseen: ShapesDataset; curriculum: ShapesDataset } {
  const { seenSizes = 'seen', unseenSizes = 'unseen', ...rest } = task;
  return {
    seen: new ShapesDataset(fineDetailOptions({ ...rest, sizes: seenSizes, shapesPerImage })),
    unseen: new ShapesDataset(fineDetailOptions({ ...rest, sizes: unseenSizes, shapesPerImage })),
    curriculum: new ShapesDataset(
      fineDetailOptions({ ...rest, sizes: curriculum.sizes ?? CURRICULUM_SIZES, shapesPerImage: curriculum.shapesPerImage ?? { min: 1, max: 1 } }),
    ),
  };
}

/** Steps of the image phase draw their scenes after the text phase's, so the two see different ones. */
const IMAGE_STEP_OFFSET = 1_000_000;

export async function runFuyu(options: FuyuOptions): Promise<FuyuResult> {
  const log = options.log ?? (() => {});
  const { size, seed, types } = options;
  const data = fineDetailDatasets(options.shapesPerImage, options.task, options.image.curriculum);
  const { model, image } = buildFuyu(size, seed);
  try {
    const heldOut = {
      seen: heldOutExamples(data.seen, types, options.heldOutPerType),
      unseen: heldOutExamples(data.unseen, types, options.unseenPerType),
    };
    const heldOutImages = { seen: heldOut.seen.map((e) => image.prepare(e.image)), unseen: heldOut.unseen.map((e) => image.prepare(e.image)) };
    const parameterCount = model.summary().totalParameters;
    const phases: PhaseReport[] = [];
    const metricsPath = (phase: string) => (options.metricsDir ? join(options.metricsDir, `metrics-${phase}.jsonl`) : undefined);

    // Text phase: the baseline.
    const textBatch = options.text.batchSize ?? options.batchSize;
    log(`text: trains 'llm' (no image), ${options.text.steps} steps of ${textBatch}`);
    let cpuAt = process.cpuUsage();
    const text = await trainTextBaseline(model, {
      dataset: data.seen,
      types,
      heldOut: heldOut.seen,
      steps: options.text.steps,
      learningRate: options.text.learningRate,
      batchSize: textBatch,
      seed,
      weightDecay: options.weightDecay,
      metricsPath: metricsPath('text'),
      progress: options.progress,
    });
    phases.push(phaseReport('text', "'llm' (text only, no image)", model.summary().trainableParameters, options.text.steps, text.history, cpuAt));
    const baseline = { seen: text.score, unseen: await exactMatch(model, heldOut.unseen, null) };
    log(`text: ${describePhase(phases[0]!)}; baseline held-out seen ${describeScore(baseline.seen, types)}; unseen ${describeScore(baseline.unseen, types)}`);

    // Image phase: everything trains.
    const settings = options.image;
    const imageBatch = settings.batchSize ?? options.batchSize;
    const summary = model.trainOnly(settings.freezePatches ? 'llm' : 'all');
    const trainable = settings.freezePatches ? "'llm' (the decoder; patch Linear and row break frozen)" : "'all'";
    log(`image: trains ${trainable}, ${summary.trainableParameters.toLocaleString('en-US')} parameters, ${settings.steps} steps of ${imageBatch}`);
    log(summary.table.replace(/^/gm, '  '));
    cpuAt = process.cpuUsage();
    const history = await runStage<ComposedModel, ComposedSample[]>(
      model,
      { steps: settings.steps, learningRate: settings.learningRate, seed, metricsPath: metricsPath('image'), progress: options.progress },
      {
        label: 'image',
        weightDecay: options.weightDecay ?? 0,
        batchAt: (step) =>
          step < (settings.curriculum?.steps ?? 0)
            ? trainingExamples(data.curriculum, seed, IMAGE_STEP_OFFSET + step, imageBatch, settings.curriculum?.types ?? types).map((e) =>
                questionSample(e, image.prepare(e.image), true),
              )
            : trainingExamples(data.seen, seed, IMAGE_STEP_OFFSET + step, imageBatch, types).map((e) =>
                conversationSample(conversationTurns(data.seen, e, types, { maxTurns: settings.turns ?? 1, seed }), image.prepare(e.image)),
              ),
        loss: (m, batch) => m.loss(batch),
      },
    );
    phases.push(phaseReport('image', trainable, summary.trainableParameters, settings.steps, history, cpuAt));
    const final = {
      seen: await exactMatch(model, heldOut.seen, heldOutImages.seen),
      unseen: await exactMatch(model, heldOut.unseen, heldOutImages.unseen),
    };
    log(`image: ${describePhase(phases[1]!)}; held-out seen ${describeScore(final.seen, types)}; unseen ${describeScore(final.unseen, types)}`);
    return { model, image, heldOut, heldOutImages, baseline, final, phases, parameterCount };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

function phaseReport(name: PhaseReport['name'], trainable: string, trainableParameters: number, steps: number, history: StepMetrics[], cpuAt: NodeJS.CpuUsage): PhaseReport {
  const cpu = process.cpuUsage(cpuAt);
  return {
    name,
    trainable,
    trainableParameters,
    steps,
    seconds: history.reduce((s, m) => s + m.time, 0),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    firstLoss: history[0]?.loss ?? null,
    lastLoss: history.at(-1)?.loss ?? null,
  };
}

function describePhase(phase: PhaseReport): string {
  const loss = (v: number | null) => (v === null ? '-' : v.toFixed(3));
  return `${phase.seconds.toFixed(1)} s (${phase.cpuSeconds.toFixed(1)} s CPU), loss ${loss(phase.firstLoss)} -> ${loss(phase.lastLoss)}`;
}
