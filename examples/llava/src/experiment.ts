/**
 * The whole LLaVA recipe on the shapes questions, as one function used by the training script and (smaller) by
 * the test. Four training phases run through core's Trainer on one composed model:
 *
 *   vision   the ViT learns the images on dense patch labels (vision-pretraining.ts): the stand-in for the
 *            pretrained CLIP tower LLaVA starts from. Frozen afterwards, as in LLaVA.
 *   text     the LLM alone learns the questions without the images ('llm' preset). This is the text-only
 *            baseline, scored here, and the "pretrained LLM" LLaVA starts from.
 *   stage 1  feature alignment: only the projector trains ('projector' preset); ViT and LLM frozen.
 *   stage 2  visual instruction tuning: projector and LLM train ('projector+llm'); with `trainVision` the ViT
 *            trains too (off by default, as in LLaVA).
 *
 * Held-out exact match per question type is measured after each phase, on a fixed set of test-split questions.
 */
import { join } from 'node:path';
import { Trainer, loadCheckpoint, saveCheckpoint, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import type { ComposedModel, ComposedSample, TrainableSelection } from '@chimera/fusion';
import type { PreparedImage, VisionModality } from '@chimera/vision-encoder';
import { ShapesDataset, type QuestionType, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import { buildLlava, type LlavaSize } from './model';
import { pretrainVision, type LabelWeights } from './vision-pretraining';
import { trainingConversations } from './samples';
import { conversationSample, describeScore, exactMatch, heldOutExamples, percent, type ExactMatch, type Example } from '@chimera-examples/shapes-vqa';

export type PhaseName = 'text' | 'stage1' | 'stage2';
export type TrainVision = boolean | 'last';
export type AllPhases = 'vision' | PhaseName;

export interface PhaseSettings {
  steps: number;
  /** Peak of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Question/answer turns per image in a training sample (default 1). */
  turns?: number;
  /** Images per step in this phase (default: LlavaOptions.batchSize). */
  batchSize?: number;
  /**
   * A curriculum: the phase's first `singleShapeSteps` steps show images with one shape only (nothing to pick
   * out: the LLM learns to read an attribute off the image tokens), the rest the dataset's mix (default 0).
   */
  singleShapeSteps?: number;
  /** Shapes per training image in this phase (default: the dataset's; the held-out questions keep the dataset's). */
  shapesPerImage?: { min: number; max: number };
  /** Vision phase only: weights of the patch-label sets (vision-pretraining.ts; default DEFAULT_LABEL_WEIGHTS). */
  labelWeights?: Partial<LabelWeights>;
}

export interface LlavaOptions {
  size: LlavaSize;
  /** Dataset options (imageSize comes from the vision size). */
  data: Omit<ShapesOptions, 'imageSize'>;
  /** Question types trained and scored. */
  types: readonly QuestionType[];
  phases: Record<AllPhases, PhaseSettings>;
  /**
   * Whether the ViT trains in stage 2 as well: false (default: frozen, as in LLaVA), true (all of it) or 'last'
   * (its last transformer layer and final norm only: cheaper, the earlier layers keep their pretrained features).
   */
  trainVision?: TrainVision;
  batchSize: number;
  /** Seeds the weights and the training questions; the held-out questions do not depend on it. */
  seed: number;
  /** Held-out questions per type. */
  heldOutPerType: number;
  /** Global gradient-norm clip (default 1). */
  clipNorm?: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Score `validationPerType` validation questions per type every `evalEvery` steps of each phase and log it (default 0: never). */
  evalEvery?: number;
  validationPerType?: number;
  /**
   * Where to save the pretrained ViT after the vision phase (a full checkpoint of the tower: the stand-in for
   * downloading CLIP). The trainable-only checkpoint check rebuilds the model from it.
   */
  visionTowerPath?: string;
  /**
   * Load the pretrained ViT from this checkpoint (one an earlier run saved at visionTowerPath) instead of running
   * the vision phase: for trying stage settings quickly.
   */
  visionTowerFrom?: string;
  /** Folder for the Trainer's per-step JSONL metrics (metrics-<phase>.jsonl); none by default. */
  metricsDir?: string;
  /** Trainer's progress bar on stderr (default false). */
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface PhaseReport {
  name: PhaseName;
  /** The freezing selection the phase trained with. */
  trainable: string;
  trainableParameters: number;
  steps: number;
  seconds: number;
  /** CPU seconds of this process in the phase's training steps (on an idle machine, about the wall time). */
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
  /** Held-out exact match after the phase. */
  score: ExactMatch;
}

/** The vision pretraining: its steps, time, losses and patch accuracies on validation images (null when loaded). */
export interface VisionReport {
  steps: number;
  seconds: number;
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
  kindAccuracy: number | null;
  colorAccuracy: number | null;
  /** The checkpoint the tower was loaded from instead of trained (visionTowerFrom). */
  loadedFrom?: string;
}

export interface LlavaResult {
  /** The trained model (the caller disposes it). */
  model: ComposedModel;
  image: VisionModality;
  dataset: ShapesDataset;
  heldOut: Example[];
  /** The held-out images, prepared once. */
  heldOutImages: PreparedImage[];
  vision: VisionReport;
  /** Where the pretrained ViT was saved (options.visionTowerPath). */
  visionTowerPath?: string;
  /** The text-only baseline's score (after the text phase). */
  baseline: ExactMatch;
  /** The LLaVA model's score after stage 2. */
  final: ExactMatch;
  phases: PhaseReport[];
  parameterCount: number;
  /** Seconds in training steps, all phases. */
  trainSeconds: number;
  totalSeconds: number;
}

/** What stage 2 trains: the projector and the LLM, plus none, the last layer or all of a `vitLayers`-layer ViT. */
export function stage2Selection(trainVision: TrainVision, vitLayers: number): TrainableSelection {
  if (trainVision === 'last') return ['image.projector', 'llm', `image.encoder.layers.${vitLayers - 1}`, 'image.encoder.post_layernorm'];
  return trainVision ? ['image.projector', 'llm', 'image.encoder'] : 'projector+llm';
}

/** What each phase trains, and whether its samples show the image. */
const PHASES: Record<PhaseName, { selection: (trainVision: TrainVision, vitLayers: number) => TrainableSelection; label: (trainVision: TrainVision) => string; withImage: boolean }> = {
  text: { selection: () => 'llm', label: () => "'llm' (text only, no image)", withImage: false },
  stage1: { selection: () => 'projector', label: () => "'projector'", withImage: true },
  stage2: {
    selection: (trainVision, vitLayers) => stage2Selection(trainVision, vitLayers),
    label: (trainVision) =>
      trainVision === 'last' ? "'projector+llm' + the ViT's last layer" : trainVision ? "'projector+llm' + image.encoder" : "'projector+llm'",
    withImage: true,
  },
};

export async function runLlava(options: LlavaOptions): Promise<LlavaResult> {
  const startedAt = performance.now();
  const log = options.log ?? (() => {});
  const { size, seed, batchSize, types } = options;
  const trainVision = options.trainVision ?? false;
  const dataset = new ShapesDataset({ ...options.data, imageSize: size.vision.imageSize });
  const singleShapeDataset = new ShapesDataset({ ...options.data, shapesPerImage: 1, imageSize: size.vision.imageSize });
  const { model, image } = buildLlava(size, seed);
  try {
    const heldOut = heldOutExamples(dataset, types, options.heldOutPerType);
    const heldOutImages = heldOut.map((e) => image.prepare(e.image));
    const evalEvery = options.evalEvery ?? 0;
    const validation = evalEvery > 0 ? heldOutExamples(dataset, types, options.validationPerType ?? 40, 'validation') : [];
    const validationImages = validation.map((e) => image.prepare(e.image));
    const parameterCount = model.summary().totalParameters;
    const phases: PhaseReport[] = [];
    let baseline: ExactMatch | null = null;
    let final: ExactMatch | null = null;

    const vision = options.visionTowerFrom
      ? await loadVision(image, options.visionTowerFrom, log)
      : await trainVisionPhase(image, dataset, options, log);
    if (options.visionTowerPath) await saveCheckpoint(image.encoder!, options.visionTowerPath);
    let trainSeconds = vision.seconds;

    for (const name of ['text', 'stage1', 'stage2'] as const) {
      const settings = options.phases[name];
      const { withImage } = PHASES[name];
      const summary = model.trainOnly(PHASES[name].selection(trainVision, size.vision.numLayers));
      const trainable = PHASES[name].label(trainVision);
      const cpuAt = process.cpuUsage();
      const phaseBatch = settings.batchSize ?? batchSize;
      const phaseDataset = settings.shapesPerImage
        ? new ShapesDataset({ ...options.data, shapesPerImage: settings.shapesPerImage, imageSize: size.vision.imageSize })
        : dataset;
      log(`${name}: trains ${trainable}, ${summary.trainableParameters.toLocaleString('en-US')} parameters, ${settings.steps} steps of ${phaseBatch}`);
      if (withImage) log(summary.table.replace(/^/gm, '  '));
      const history = await trainPhase(model, settings, {
        batchAt: (step) =>
          trainingConversations(
            step < (settings.singleShapeSteps ?? 0) ? singleShapeDataset : phaseDataset,
            seed,
            phaseOffset(name) + step,
            phaseBatch,
            types,
            settings.turns ?? 1,
          ).map((turns) =>
            conversationSample(turns, withImage ? image.prepare(turns[0]!.image) : null),
          ),
        clipNorm: options.clipNorm ?? 1,
        weightDecay: options.weightDecay ?? 0,
        metricsPath: options.metricsDir ? join(options.metricsDir, `metrics-${name}.jsonl`) : undefined,
        progress: options.progress ?? false,
        evalEvery,
        onEval: async (step) => {
          const score = await exactMatch(model, validation, withImage ? validationImages : null);
          log(`  ${name} step ${step}: validation ${describeScore(score, types)} (${((performance.now() - startedAt) / 1000).toFixed(0)} s)`);
        },
      });
      const seconds = history.reduce((s, m) => s + m.time, 0);
      const cpuSeconds = cpuSince(cpuAt);
      trainSeconds += seconds;
      const score = await exactMatch(model, heldOut, withImage ? heldOutImages : null);
      // The text phase's LLM never saw an image: scored then, it is the text-only baseline (same questions and
      // answers, same size); it is also the pretrained LLM that stage 1 starts from.
      if (name === 'text') baseline = score;
      if (name === 'stage2') final = score;
      phases.push({
        name,
        trainable,
        trainableParameters: summary.trainableParameters,
        steps: settings.steps,
        seconds,
        cpuSeconds,
        firstLoss: history[0]?.loss ?? null,
        lastLoss: history.at(-1)?.loss ?? null,
        score,
      });
      log(`${name}: ${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} s CPU), loss ${fmtLoss(history[0]?.loss)} -> ${fmtLoss(history.at(-1)?.loss)}; held-out ${describeScore(score, types)}`);
      if (withImage) log(`  by shapes in the image: ${describeByShapes(score, types)}`);
    }
    const totalSeconds = (performance.now() - startedAt) / 1000;
    return { model, image, dataset, heldOut, heldOutImages, vision, visionTowerPath: options.visionTowerPath, baseline: baseline!, final: final!, phases, parameterCount, trainSeconds, totalSeconds };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** The vision phase: the ViT learns dense patch labels, then stays frozen. */
async function trainVisionPhase(image: VisionModality, dataset: ShapesDataset, options: LlavaOptions, log: (line: string) => void): Promise<VisionReport> {
  const settings = options.phases.vision;
  const batchSize = settings.batchSize ?? options.batchSize;
  log(`vision: trains the ViT (image.encoder) on dense patch labels, ${settings.steps} steps of ${batchSize}`);
  const cpuAt = process.cpuUsage();
  const pretrained = await pretrainVision(image.encoder!, dataset, {
    steps: settings.steps,
    learningRate: settings.learningRate,
    batchSize,
    seed: options.seed,
    prepare: (picture) => image.prepare(picture),
    featureLayer: options.size.vision.featureLayer,
    labelWeights: settings.labelWeights,
    metricsPath: options.metricsDir ? join(options.metricsDir, 'metrics-vision.jsonl') : undefined,
    progress: options.progress ?? false,
  });
  const report: VisionReport = {
    steps: settings.steps,
    seconds: pretrained.history.reduce((s, m) => s + m.time, 0),
    cpuSeconds: cpuSince(cpuAt),
    firstLoss: pretrained.history[0]?.loss ?? null,
    lastLoss: pretrained.history.at(-1)?.loss ?? null,
    kindAccuracy: pretrained.kindAccuracy,
    colorAccuracy: pretrained.colorAccuracy,
  };
  log(
    `vision: ${report.seconds.toFixed(1)} s (${report.cpuSeconds.toFixed(1)} s CPU), loss ${fmtLoss(report.firstLoss)} -> ${fmtLoss(report.lastLoss)}; ` +
      `validation patches: kind ${percent(pretrained.kindAccuracy)}, colour ${percent(pretrained.colorAccuracy)}`,
  );
  return report;
}

/** Loads the pretrained ViT an earlier run saved (its patch-label head was not saved, so no patch accuracies). */
async function loadVision(image: VisionModality, path: string, log: (line: string) => void): Promise<VisionReport> {
  await loadCheckpoint(image.encoder!, path);
  log(`vision: loaded the pretrained ViT from ${path} (vision phase skipped)`);
  return { steps: 0, seconds: 0, cpuSeconds: 0, firstLoss: null, lastLoss: null, kindAccuracy: null, colorAccuracy: null, loadedFrom: path };
}

interface PhaseRun {
  batchAt: (step: number) => ComposedSample[];
  clipNorm: number;
  weightDecay: number;
  metricsPath?: string;
  progress: boolean | 'auto';
  evalEvery: number;
  onEval: (step: number) => Promise<void>;
}

async function trainPhase(model: ComposedModel, settings: PhaseSettings, run: PhaseRun): Promise<StepMetrics[]> {
  if (settings.steps === 0) return [];
  const trainer = new Trainer<ComposedModel, ComposedSample[]>({
    model,
    steps: settings.steps,
    optimizer: {
      learningRate: warmupCosineSchedule({ peak: settings.learningRate, totalSteps: settings.steps, floor: settings.learningRate / 10 }),
      weightDecay: run.weightDecay,
    },
    clipNorm: run.clipNorm,
    metricsPath: run.metricsPath,
    progress: run.progress,
    batchAt: (step) => run.batchAt(step),
    loss: (m, batch) => m.loss(batch),
  });
  try {
    if (run.evalEvery <= 0) return (await trainer.fit()).history;
    // fit() in chunks so the evaluations run between steps (the Trainer's onStep is synchronous).
    const history: StepMetrics[] = [];
    for (let done = 0; done < settings.steps; ) {
      const chunk = Math.min(run.evalEvery, settings.steps - done);
      for (let i = 0; i < chunk; i++) history.push(trainer.trainStep());
      done += chunk;
      await run.onEval(done);
    }
    return history;
  } finally {
    trainer.dispose();
  }
}

/** Each phase draws its own training questions (a disjoint range of steps of the seeded stream). */
function phaseOffset(name: PhaseName): number {
  return { text: 0, stage1: 1_000_000, stage2: 2_000_000 }[name];
}

/** User + system CPU seconds since `start`. */
export function cpuSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1e6;
}

function fmtLoss(loss: number | null | undefined): string {
  return loss == null ? 'n/a' : loss.toFixed(3);
}

/** 'shape 1: 100.0% 2: 97.0% 3: 95.1%; color ...' (held-out exact match per type, split by shapes per image). */
export function describeByShapes(score: ExactMatch, types: readonly QuestionType[]): string {
  return types
    .map((t) => `${t} ${Object.entries(score.byTypeAndShapes[t] ?? {}).map(([shapes, s]) => `${shapes}: ${percent(s.accuracy)}`).join(' ')}`)
    .join('; ');
}
