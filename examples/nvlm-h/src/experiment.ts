/**
 * The whole NVLM-H experiment as one function, used by the training script and (smaller) by the test:
 *
 *   vision    the ViT learns dense patch labels (shapes-vqa's pretrainVisionTower) of small images crowded with
 *             shapes (one tile each), optionally then of the thumbnails of task images: the stand-in for the
 *             pretrained InternViT NVLM starts from. Frozen afterwards, as in NVLM.
 *   encode    the frozen ViT encodes the training pool and the held-out images once (frozen-views.ts).
 *   text      the LLM alone learns the questions without the image (shapes-vqa's trainTextBaseline). Scored then,
 *             it is the text-only baseline; it is also the pretrained LLM both arms start from.
 *   per arm   (hybrid and thumbnail-only, from the same ViT, LLM and projector weights; arm.ts)
 *     stage 1   'fusion': the thumbnail projector and, in the hybrid, the cross-attention blocks; LLM frozen
 *               (NVLM's pretraining stage: the LLM and the vision encoder frozen)
 *     stage 2   'projector+llm': the same plus the LLM (NVLM's supervised fine-tuning); the ViT stays frozen
 *
 * With `workerScript` the arms train at once, each in a child process (one core each); without, one after the
 * other in this process. Held-out exact match per question type after each stage, on a fixed set of test-split
 * questions.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint, saveCheckpoint, type BackendName, type StepMetrics } from '@chimera/core';
import type { VisionModality, VisionTransformer } from '@chimera/vision-encoder';
import { ShapesDataset, type QuestionType, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import { describeScore, heldOutExamples, percent, pretrainVisionTower, trainTextBaseline, type Example, type ExactMatch, type PatchAccuracy } from '@chimera-examples/shapes-vqa';
import { fmt, isOwnLLMParameter, snapshot, trainArm, type ArmInput, type ArmOutput, type PhaseReport, type PhaseSettings } from './arm';
import { encodeImages, type ImageFeatures } from './frozen-views';
import { buildArm, buildViT, tilesPlugin, type ArmName, type NvlmSize } from './model';
import { buildPool } from './pool';

export type PhaseName = 'vision' | 'visionTask' | 'text' | 'stage1' | 'stage2';

export interface NvlmOptions {
  size: NvlmSize;
  /** Dataset options (the fine-detail task's: fineDetailOptions()). Held-out questions come from its test split. */
  data: ShapesOptions;
  /**
   * The images the ViT first learns its tiles on (phase 'vision', tile views only): small images crowded with the
   * task's shapes, at the task's tile scales, so most patches of a step hold a shape (a task image's tiles are ~97%
   * background). Phase 'visionTask' then trains the thumbnails of task images (what thumbnail-only fusion reads);
   * off by default, since it degraded the tile features (README).
   */
  visionData: ShapesOptions;
  /** Shapes per training-pool image (default: the dataset's). */
  poolShapes?: { min: number; max: number };
  /** Train-split images encoded once and trained on. */
  poolSize: number;
  types: readonly QuestionType[];
  phases: Record<PhaseName, PhaseSettings>;
  /** Arms trained (default both). */
  arms?: readonly ArmName[];
  batchSize: number;
  /** How often each type is drawn in the arms' training against the others an image has (default all alike). */
  typeWeights?: Partial<Record<QuestionType, number>>;
  /** Seeds the weights, the pool and the training draws; the held-out questions do not depend on it. */
  seed: number;
  heldOutPerType: number;
  /** Where to save the pretrained ViT (the frozen part the trainable-only checkpoint is loaded onto). */
  visionTowerPath?: string;
  /** Load the pretrained ViT from this checkpoint instead of running the vision phase. */
  visionTowerFrom?: string;
  /** Where to save the hybrid's trainable-only checkpoint after stage 2 (none by default). */
  checkpointPath?: string;
  /** The built arm-worker.js: train the arms at once in child processes (default: one after the other, here). */
  workerScript?: string | URL;
  /** Backend the child processes start (default initBackend()'s choice). */
  backend?: BackendName;
  /** Folder for the Trainer's per-step JSONL metrics (metrics-<phase>.jsonl). */
  metricsDir?: string;
  progress?: boolean | 'auto';
  log?: (line: string) => void;
}

export interface VisionReport extends PhaseReport {
  /** Patch accuracies on validation images (null when the tower was loaded). */
  accuracy: PatchAccuracy | null;
  loadedFrom?: string;
}

export interface NvlmResult {
  arms: Partial<Record<ArmName, ArmOutput>>;
  baseline: ExactMatch;
  text: PhaseReport;
  vision: VisionReport;
  heldOut: Example[];
  /** The held-out images' frozen features, in heldOut's order. */
  heldOutFeatures: ImageFeatures[];
  pool: { images: number; questions: number; byShapes: Record<string, number> };
  /** Wall seconds of encoding the pool and the held-out images, and of training the arms. */
  encodeSeconds: number;
  armsSeconds: number;
  visionTowerPath?: string;
  checkpointPath?: string;
}

export async function runNvlm(options: NvlmOptions): Promise<NvlmResult> {
  const log = options.log ?? (() => {});
  const { size, seed, types } = options;
  const dataset = new ShapesDataset(options.data);
  const poolDataset = options.poolShapes ? new ShapesDataset({ ...options.data, shapesPerImage: options.poolShapes }) : dataset;
  const heldOut = heldOutExamples(dataset, types, options.heldOutPerType);
  const metrics = (name: string) => (options.metricsDir ? join(options.metricsDir, `metrics-${name}.jsonl`) : undefined);

  // The pretrained ViT and the features it gives, computed once.
  const tower = buildViT(size.vision, seed);
  let vision: VisionReport;
  let towerWeights;
  let pool;
  let poolFeatures: ImageFeatures[];
  let heldOutFeatures: ImageFeatures[];
  const encodeStart = performance.now();
  try {
    const towerPlugin = tilesPlugin(tower, size.vision);
    vision = options.visionTowerFrom ? await loadTower(tower, options.visionTowerFrom, log) : await pretrainTower(tower, towerPlugin, dataset, options, metrics, log);
    if (options.visionTowerPath) await saveCheckpoint(tower, options.visionTowerPath);
    towerWeights = snapshot(tower);
    pool = buildPool(poolDataset, seed, options.poolSize, types);
    poolFeatures = encodeImages(towerPlugin, pool.map((p) => p.image), { pool: size.vision.pool });
    heldOutFeatures = encodeImages(towerPlugin, heldOut.map((e) => e.image), { pool: size.vision.pool });
  } finally {
    tower.dispose();
  }
  const encodeSeconds = (performance.now() - encodeStart) / 1000 - vision.seconds;
  log(`encode: ${pool.length} pool and ${heldOut.length} held-out images through the frozen ViT in ${encodeSeconds.toFixed(1)} s`);
  const byShapes: Record<string, number> = {};
  for (const p of pool) byShapes[p.shapeCount] = (byShapes[p.shapeCount] ?? 0) + 1;
  const poolQuestions = pool.reduce((sum, p) => sum + Object.values(p.questions).reduce((s, q) => s + q!.length, 0), 0);

  // The text stage, on an arm without inserted blocks: its LLM is then every arm's starting LLM.
  const textArm = buildArm('thumbnail', size, seed);
  let text: PhaseReport;
  let baseline: ExactMatch;
  let llmWeights;
  try {
    const settings = options.phases.text;
    const batchSize = settings.batchSize ?? options.batchSize;
    log(`text: trains 'llm' on the questions without the image, ${settings.steps} steps of ${batchSize}`);
    const cpu = process.cpuUsage();
    const run = await trainTextBaseline(textArm.model, {
      dataset,
      types,
      heldOut,
      steps: settings.steps,
      learningRate: settings.learningRate,
      batchSize,
      seed,
      metricsPath: metrics('text'),
      progress: options.progress,
    });
    text = phaseReport('text', "'llm' (text only)", textArm.model.summary().trainableParameters, settings.steps, run.history, cpu);
    baseline = run.score;
    llmWeights = snapshot(textArm.model, isOwnLLMParameter);
    log(`text: ${text.seconds.toFixed(1)} s, loss ${fmt(text.firstLoss)} -> ${fmt(text.lastLoss)}; text-only baseline ${describeScore(baseline, types)}`);
  } finally {
    textArm.model.dispose();
  }

  const names = options.arms ?? (['hybrid', 'thumbnail'] as const);
  const inputs: ArmInput[] = names.map((name) => ({
    name,
    size,
    seed,
    types,
    phases: { stage1: options.phases.stage1, stage2: options.phases.stage2 },
    batchSize: options.batchSize,
    typeWeights: options.typeWeights,
    pool: pool.map((p) => ({ questions: p.questions })),
    poolFeatures,
    heldOut,
    heldOutFeatures,
    tower: towerWeights,
    llm: llmWeights,
    checkpointPath: name === 'hybrid' ? options.checkpointPath : undefined,
    metricsDir: options.metricsDir,
    progress: options.workerScript ? false : options.progress,
  }));
  const armsStart = performance.now();
  const outputs: ArmOutput[] = [];
  if (options.workerScript) {
    log(`arms: ${names.join(' and ')} train at once, each in a child process`);
    outputs.push(...(await Promise.all(inputs.map((input) => trainInChild(options.workerScript!, input, options.backend, log)))));
  } else {
    for (const input of inputs) outputs.push(await trainArm(input, log));
  }
  const armsSeconds = (performance.now() - armsStart) / 1000;
  return {
    arms: Object.fromEntries(outputs.map((o) => [o.name, o])),
    baseline,
    text,
    vision,
    heldOut,
    heldOutFeatures,
    pool: { images: pool.length, questions: poolQuestions, byShapes },
    encodeSeconds,
    armsSeconds,
    visionTowerPath: options.visionTowerPath,
    checkpointPath: options.checkpointPath,
  };
}

/** Trains one arm in a child process running `script` (arm-worker.ts); its log lines come back through `log`. */
function trainInChild(script: string | URL, input: ArmInput, backend: BackendName | undefined, log: (line: string) => void): Promise<ArmOutput> {
  const path = script instanceof URL ? fileURLToPath(script) : script;
  return new Promise((resolve, reject) => {
    const child = fork(path, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: ArmOutput | null = null;
    let failure: string | null = null;
    child.on('message', (message: { log?: string; result?: ArmOutput; error?: string }) => {
      if (message.log !== undefined) log(message.log);
      if (message.result) result = message.result;
      if (message.error) failure = message.error;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`the ${input.name} arm's child process (${path}) exited with code ${code}${failure ? `:\n${failure}` : ''}`));
    });
    child.send({ backend, input });
  });
}

async function pretrainTower(
  tower: VisionTransformer,
  plugin: VisionModality,
  dataset: ShapesDataset,
  options: NvlmOptions,
  metrics: (name: string) => string | undefined,
  log: (line: string) => void,
): Promise<VisionReport> {
  const cpu = process.cpuUsage();
  const history: StepMetrics[] = [];
  let accuracy = null as PatchAccuracy | null;
  const runs = [
    { phase: 'vision', data: new ShapesDataset(options.visionData), views: ['tile'] as const, what: 'the tiles of small crowded images' },
    { phase: 'visionTask', data: dataset, views: ['thumbnail'] as const, what: 'the thumbnails of task images' },
  ] as const;
  for (const run of runs) {
    const settings = options.phases[run.phase];
    if (settings.steps === 0 && run.phase === 'visionTask') continue; // nothing to train, and an untrained head's accuracy means nothing
    const batchSize = settings.batchSize ?? options.batchSize;
    log(`${run.phase}: trains the ViT on dense patch labels of ${run.what}, ${settings.steps} steps of ${batchSize} images`);
    const result = await pretrainVisionTower(tower, {
      dataset: run.data,
      views: run.views,
      prepare: (image) => plugin.prepare(image),
      steps: settings.steps,
      learningRate: settings.learningRate,
      batchSize,
      seed: options.seed + (run.phase === 'visionTask' ? 1000 : 0),
      featureLayer: -1,
      validationImages: 100,
      metricsPath: metrics(run.phase),
      progress: options.progress,
    });
    history.push(...result.history);
    if (result.accuracy) accuracy = { ...result.accuracy, byView: { ...accuracy?.byView, ...result.accuracy.byView } };
    log(`${run.phase}: ${result.history.reduce((t, m) => t + m.time, 0).toFixed(1)} s, loss ${fmt(result.history[0]?.loss ?? null)} -> ${fmt(result.history.at(-1)?.loss ?? null)}`);
  }
  const report: VisionReport = { ...phaseReport('vision', 'the ViT with a patch-label head', tower.countParameters(), history.length, history, cpu), accuracy };
  if (accuracy) {
    log(
      `vision: validation patches: tiles of crowded images kind ${percent(accuracy.byView.tile?.kind)} colour ${percent(accuracy.byView.tile?.color)}, ` +
        `thumbnails of task images kind ${percent(accuracy.byView.thumbnail?.kind)} colour ${percent(accuracy.byView.thumbnail?.color)}`,
    );
  }
  return report;
}

async function loadTower(tower: VisionTransformer, path: string, log: (line: string) => void): Promise<VisionReport> {
  await loadCheckpoint(tower, path);
  log(`vision: loaded the pretrained ViT from ${path} (vision phase skipped)`);
  return { name: 'vision', trainable: 'none (loaded)', trainableParameters: 0, steps: 0, seconds: 0, cpuSeconds: 0, firstLoss: null, lastLoss: null, accuracy: null, loadedFrom: path };
}

function phaseReport(name: string, trainable: string, trainableParameters: number, steps: number, history: StepMetrics[], cpuAt: NodeJS.CpuUsage): PhaseReport {
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
