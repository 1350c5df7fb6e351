/**
 * The whole NVLM-H experiment as one function, used by the training script and (smaller) by the test:
 *
 *   vision    the ViT learns the tiles and thumbnails on dense patch labels (shapes-vqa's pretrainVisionTower):
 *             the stand-in for the pretrained InternViT NVLM starts from. Frozen afterwards, as in NVLM.
 *   encode    the frozen ViT encodes the training pool and the held-out images once (frozen-views.ts).
 *   text      the LLM alone learns the questions without the image (shapes-vqa's trainTextBaseline). Scored then,
 *             it is the text-only baseline; it is also the pretrained LLM both arms start from.
 *   per arm   (hybrid, then thumbnail-only; the same ViT, projector and LLM weights at the start)
 *     stage 1   'fusion': the thumbnail projector and, in the hybrid, the cross-attention blocks; LLM frozen
 *               (NVLM's pretraining stage: the LLM and the vision encoder frozen)
 *     stage 2   'projector+llm': the same plus the LLM (NVLM's supervised fine-tuning); the ViT stays frozen
 *
 * Held-out exact match per question type after each stage, on a fixed set of test-split questions.
 */
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, type Module, type StepMetrics } from '@chimera/core';
import type { ComposedModel, ComposedSample, TrainableSelection } from '@chimera/fusion';
import { runStage } from '@chimera-examples/kit';
import type { VisionModality, VisionTransformer } from '@chimera/vision-encoder';
import { ShapesDataset, type QuestionType, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import {
  exactMatch,
  describeScore,
  heldOutExamples,
  percent,
  pretrainVisionTower,
  questionSample,
  trainTextBaseline,
  type Example,
  type ExactMatch,
  type PatchAccuracy,
} from '@chimera-examples/shapes-vqa';
import { encodeImages, type ImageFeatures } from './frozen-views';
import { buildArm, buildViT, tilesPlugin, type Arm, type ArmName, type NvlmSize } from './model';
import { buildPool, drawBatch, type PoolImage } from './pool';
import { TILE_TAGS } from './vocabulary';

export interface PhaseSettings {
  steps: number;
  /** Peak of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Images per step (default: NvlmOptions.batchSize). */
  batchSize?: number;
}

export type PhaseName = 'vision' | 'text' | 'stage1' | 'stage2';

export interface NvlmOptions {
  size: NvlmSize;
  /** Dataset options (the fine-detail task's: fineDetailOptions()). Held-out questions come from its test split. */
  data: ShapesOptions;
  /** Shapes per training-pool image (default: the dataset's). */
  poolShapes?: { min: number; max: number };
  /** Train-split images encoded once and trained on. */
  poolSize: number;
  types: readonly QuestionType[];
  phases: Record<PhaseName, PhaseSettings>;
  /** Arms trained, in order (default both). */
  arms?: readonly ArmName[];
  batchSize: number;
  /** Seeds the weights, the pool and the training draws; the held-out questions do not depend on it. */
  seed: number;
  heldOutPerType: number;
  /** Where to save the pretrained ViT (the frozen part the trainable-only checkpoint is loaded onto). */
  visionTowerPath?: string;
  /** Load the pretrained ViT from this checkpoint instead of running the vision phase. */
  visionTowerFrom?: string;
  /** Folder for the Trainer's per-step JSONL metrics (metrics-<phase>.jsonl). */
  metricsDir?: string;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface PhaseReport {
  name: PhaseName;
  trainable: string;
  trainableParameters: number;
  steps: number;
  /** Wall seconds of the training steps. */
  seconds: number;
  /** CPU seconds of this process over the phase. */
  cpuSeconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

export interface VisionReport extends PhaseReport {
  /** Patch accuracies on validation images (null when the tower was loaded). */
  accuracy: PatchAccuracy | null;
  loadedFrom?: string;
}

export interface ArmResult extends Arm {
  /** Held-out score after stage 1 and after stage 2 (the arm's result). */
  afterStage1: ExactMatch;
  final: ExactMatch;
  phases: PhaseReport[];
  parameters: number;
}

export interface NvlmResult {
  arms: Partial<Record<ArmName, ArmResult>>;
  baseline: ExactMatch;
  text: PhaseReport;
  vision: VisionReport;
  heldOut: Example[];
  /** The held-out images' frozen features, in heldOut's order. */
  heldOutFeatures: ImageFeatures[];
  pool: { images: number; questions: number; byShapes: Record<string, number> };
  /** Wall seconds of encoding the pool and the held-out images. */
  encodeSeconds: number;
  visionTowerPath?: string;
}

/** What each stage trains (presets over parameter-group kinds, so both arms train the same kinds). */
const STAGES: Record<'stage1' | 'stage2', { selection: TrainableSelection; label: string }> = {
  stage1: { selection: 'fusion', label: "'fusion' (projector, cross-attention blocks)" },
  stage2: { selection: 'projector+llm', label: "'projector+llm' (projector, cross-attention blocks, LLM)" },
};

/** Each stage draws its own steps of the seeded stream. */
const STEP_OFFSET = { stage1: 1_000_000, stage2: 2_000_000 } as const;

/** Greedy answers with the tile tags suppressed: they are input-only tokens, never an answer. */
export function answering(model: ComposedModel): Pick<ComposedModel, 'generate'> {
  return { generate: (prompts, options) => model.generate(prompts, { ...options, suppressTokens: TILE_TAGS }) };
}

/** Held-out exact match of an arm (features in heldOut's order). */
export function scoreArm(model: ComposedModel, heldOut: readonly Example[], features: readonly ImageFeatures[]): Promise<ExactMatch> {
  return exactMatch(answering(model), heldOut, features);
}

export async function runNvlm(options: NvlmOptions): Promise<NvlmResult> {
  const log = options.log ?? (() => {});
  const { size, seed, types } = options;
  const dataset = new ShapesDataset(options.data);
  const poolDataset = options.poolShapes ? new ShapesDataset({ ...options.data, shapesPerImage: options.poolShapes }) : dataset;
  const heldOut = heldOutExamples(dataset, types, options.heldOutPerType);
  const metrics = (name: string) => (options.metricsDir ? join(options.metricsDir, `metrics-${name}.jsonl`) : undefined);

  // The pretrained ViT and the features it gives, computed once; each arm gets a copy of its weights.
  const tower = buildViT(size.vision, seed);
  const towerPlugin = tilesPlugin(tower, size.vision);
  const built: Arm[] = [];
  let vision: VisionReport;
  let pool: PoolImage[];
  let poolFeatures: ImageFeatures[];
  let heldOutFeatures: ImageFeatures[];
  let encodeSeconds: number;
  try {
    vision = options.visionTowerFrom ? await loadTower(tower, options.visionTowerFrom, log) : await pretrainTower(tower, towerPlugin, dataset, options, metrics('vision'), log);
    if (options.visionTowerPath) await saveCheckpoint(tower, options.visionTowerPath);
    const encodeStart = performance.now();
    pool = buildPool(poolDataset, seed, options.poolSize, types);
    poolFeatures = encodeImages(towerPlugin, pool.map((p) => p.image));
    heldOutFeatures = encodeImages(towerPlugin, heldOut.map((e) => e.image));
    encodeSeconds = (performance.now() - encodeStart) / 1000;
    log(`encode: ${pool.length} pool and ${heldOut.length} held-out images through the frozen ViT in ${encodeSeconds.toFixed(1)} s`);
    for (const name of options.arms ?? (['hybrid', 'thumbnail'] as const)) {
      const arm = buildArm(name, size, seed);
      built.push(arm);
      copyParameters(tower, arm.image.encoder);
    }
  } catch (error) {
    for (const arm of built) arm.model.dispose();
    throw error;
  } finally {
    tower.dispose();
  }
  const poolQuestions = pool.reduce((sum, p) => sum + Object.values(p.questions).reduce((s, q) => s + q!.length, 0), 0);
  const byShapes: Record<string, number> = {};
  for (const p of pool) byShapes[p.shapeCount] = (byShapes[p.shapeCount] ?? 0) + 1;

  const arms: Partial<Record<ArmName, ArmResult>> = {};
  try {
    // The text stage runs on the first arm's LLM; every arm then starts from that LLM.
    const first = built[0]!;
    const textSettings = options.phases.text;
    const textCpu = process.cpuUsage();
    log(`text: trains 'llm' on the questions without the image, ${textSettings.steps} steps of ${textSettings.batchSize ?? options.batchSize}`);
    const textRun = await trainTextBaseline(first.model, {
      dataset,
      types,
      heldOut,
      steps: textSettings.steps,
      learningRate: textSettings.learningRate,
      batchSize: textSettings.batchSize ?? options.batchSize,
      seed,
      metricsPath: metrics('text'),
      progress: options.progress,
    });
    const text = phaseReport('text', "'llm' (text only)", first.model.summary().trainableParameters, textSettings.steps, textRun.history, textCpu);
    const baseline = textRun.score;
    log(`text: ${text.seconds.toFixed(1)} s, loss ${fmt(text.firstLoss)} -> ${fmt(text.lastLoss)}; text-only baseline ${describeScore(baseline, types)}`);
    for (const arm of built.slice(1)) copyLLM(first.model, arm.model);

    for (const arm of built) {
      const phases: PhaseReport[] = [];
      let afterStage1: ExactMatch | null = null;
      let final: ExactMatch | null = null;
      for (const stage of ['stage1', 'stage2'] as const) {
        const settings = options.phases[stage];
        const batchSize = settings.batchSize ?? options.batchSize;
        const summary = arm.model.trainOnly(STAGES[stage].selection);
        log(`${arm.name} ${stage}: trains ${STAGES[stage].label}, ${summary.trainableParameters.toLocaleString('en-US')} parameters, ${settings.steps} steps of ${batchSize}`);
        const cpu = process.cpuUsage();
        const history =
          settings.steps > 0
            ? await runStage<ComposedModel, ComposedSample[]>(
                arm.model,
                { steps: settings.steps, learningRate: settings.learningRate, seed, metricsPath: metrics(`${arm.name}-${stage}`), progress: options.progress },
                {
                  label: `${arm.name} ${stage}`,
                  weightDecay: 0,
                  batchAt: (step) =>
                    drawBatch(pool, seed, STEP_OFFSET[stage] + step, batchSize).map((draw) =>
                      questionSample({ question: draw.question.text, answer: draw.question.answer }, poolFeatures[draw.image]!, true),
                    ),
                  loss: (m, batch) => m.loss(batch),
                },
              )
            : [];
        const report = phaseReport(stage, STAGES[stage].label, summary.trainableParameters, settings.steps, history, cpu);
        phases.push(report);
        const score = await scoreArm(arm.model, heldOut, heldOutFeatures);
        if (stage === 'stage1') afterStage1 = score;
        else final = score;
        log(`${arm.name} ${stage}: ${report.seconds.toFixed(1)} s (${report.cpuSeconds.toFixed(1)} s CPU), loss ${fmt(report.firstLoss)} -> ${fmt(report.lastLoss)}; held-out ${describeScore(score, types)}`);
      }
      arms[arm.name] = { ...arm, afterStage1: afterStage1!, final: final!, phases, parameters: arm.model.summary().totalParameters };
    }
    return {
      arms,
      baseline,
      text,
      vision,
      heldOut,
      heldOutFeatures,
      pool: { images: pool.length, questions: poolQuestions, byShapes },
      encodeSeconds,
      visionTowerPath: options.visionTowerPath,
    };
  } catch (error) {
    for (const arm of built) arm.model.dispose();
    throw error;
  }
}

async function pretrainTower(
  tower: VisionTransformer,
  plugin: VisionModality,
  dataset: ShapesDataset,
  options: NvlmOptions,
  metricsPath: string | undefined,
  log: (line: string) => void,
): Promise<VisionReport> {
  const settings = options.phases.vision;
  const batchSize = settings.batchSize ?? options.batchSize;
  log(`vision: trains the ViT on dense patch labels of every tile and thumbnail, ${settings.steps} steps of ${batchSize} images`);
  const cpu = process.cpuUsage();
  const result = await pretrainVisionTower(tower, {
    dataset,
    prepare: (image) => plugin.prepare(image),
    steps: settings.steps,
    learningRate: settings.learningRate,
    batchSize,
    seed: options.seed,
    featureLayer: -1,
    metricsPath,
    progress: options.progress,
  });
  const report: VisionReport = {
    ...phaseReport('vision', 'the ViT with a patch-label head', tower.countParameters(), settings.steps, result.history, cpu),
    accuracy: result.accuracy,
  };
  const acc = result.accuracy;
  log(
    `vision: ${report.seconds.toFixed(1)} s, loss ${fmt(report.firstLoss)} -> ${fmt(report.lastLoss)}` +
      (acc
        ? `; validation patches: tiles kind ${percent(acc.byView.tile?.kind)} colour ${percent(acc.byView.tile?.color)}, ` +
          `thumbnails kind ${percent(acc.byView.thumbnail?.kind)} colour ${percent(acc.byView.thumbnail?.color)}`
        : ''),
  );
  return report;
}

async function loadTower(tower: VisionTransformer, path: string, log: (line: string) => void): Promise<VisionReport> {
  await loadCheckpoint(tower, path);
  log(`vision: loaded the pretrained ViT from ${path} (vision phase skipped)`);
  return { name: 'vision', trainable: 'none (loaded)', trainableParameters: 0, steps: 0, seconds: 0, cpuSeconds: 0, firstLoss: null, lastLoss: null, accuracy: null, loadedFrom: path };
}

/** Copies every parameter of `from` into the same-named one of `to` (a module of the same shape). */
export function copyParameters(from: Module, to: Module): void {
  const target = new Map(to.namedParameters());
  for (const [name, value] of from.namedParameters()) {
    const variable = target.get(name);
    if (!variable) throw new Error(`copyParameters: the target has no parameter ${name}; build both from the same size`);
    variable.assign(value);
  }
}

/**
 * Copies the LLM's own weights (`llm.*`, without the blocks a strategy inserted, `llm.model.inserted.*`) from one
 * arm to another.
 */
export function copyLLM(from: ComposedModel, to: ComposedModel): void {
  const target = new Map(to.namedParameters());
  for (const [name, value] of from.namedParameters()) {
    if (!name.startsWith('llm.') || name.startsWith('llm.model.inserted.')) continue;
    const variable = target.get(name);
    if (!variable) throw new Error(`copyLLM: the target model has no parameter ${name}; both arms must be built with the same LLM size`);
    variable.assign(value);
  }
}

function phaseReport(name: PhaseName, trainable: string, trainableParameters: number, steps: number, history: StepMetrics[], cpuAt: NodeJS.CpuUsage): PhaseReport {
  const { user, system } = process.cpuUsage(cpuAt);
  return {
    name,
    trainable,
    trainableParameters,
    steps,
    seconds: history.reduce((s, m) => s + m.time, 0),
    cpuSeconds: (user + system) / 1e6,
    firstLoss: history[0]?.loss ?? null,
    lastLoss: history.at(-1)?.loss ?? null,
  };
}

function fmt(loss: number | null): string {
  return loss === null ? 'n/a' : loss.toFixed(3);
}
