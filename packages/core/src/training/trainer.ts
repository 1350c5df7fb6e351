/**
 * The training loop: batches as a pure function of the step, gradient accumulation, global-norm clipping,
 * AdamW with a scheduled rate, a guard that skips non-finite steps, metrics as JSONL, a progress line, and
 * checkpoints from which a resumed run continues exactly (weights, moments, step and global RNG state).
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../nn/module';
import { globalRandom, manualSeed } from '../runtime/random';
import { accumulateGradients, isThenable, swallowRejection } from './accumulate';
import { AdamW, type AdamWOptions } from './adamw';
import { recoverDirectory } from '../weights/directory-commit';
import {
  assertKeepLast,
  CHECKPOINT_FILES,
  CheckpointDamagedError,
  checkpointDirName,
  listCheckpoints,
  pruneCheckpoints,
  readTrainingCheckpoint,
  saveTrainingCheckpoint,
  type ReadCheckpoint,
  type TrainerState,
} from './checkpoint-state';
import { clipByGlobalNorm, globalNorm } from './clip';
import { MetricsLog, type StepMetrics } from './metrics';
import { ProgressDisplay } from './progress';

/** Where in the run a loss call is. */
export interface StepContext {
  /** The 0-based optimizer step. */
  step: number;
  /** Which micro-batch of the step (0 .. accumulationSteps-1). */
  microStep: number;
}

/** When and where the {@link Trainer} saves training checkpoints. */
export interface CheckpointOptions {
  /** Root folder; each checkpoint is a subfolder `step-00000100`. */
  dir: string;
  /** Save every this many steps (and always at the end of fit). */
  every: number;
  /** Keep only the newest this many checkpoints (default 2; at least 1). */
  keepLast?: number;
}

/**
 * Options of {@link Trainer}: the model, its loss, the batches as a function of the step, the optimizer and what to
 * record.
 */
export interface TrainerOptions<M extends Module, B> {
  /** The model to train; the caller keeps and disposes it. */
  model: M;
  /** Scalar loss of the model on a batch. Runs under tf.variableGrads; tensors it makes are freed for you. */
  loss: (model: M, batch: B, context: StepContext) => tf.Scalar;
  /**
   * The batch for a step (and micro-batch). Must be a pure function of its arguments so a resumed run sees
   * the same data; tensors it creates are freed after the step (it runs inside tf.tidy), so it must be
   * synchronous: load data as plain arrays up front and build tensors here.
   */
  batchAt: (step: number, microStep: number) => B;
  /** Total optimizer steps of the run. */
  steps: number;
  /** An AdamW to use (the caller keeps and disposes it), or options for one the Trainer builds and owns. */
  optimizer?: AdamW | AdamWOptions;
  /** Micro-batches whose gradients are averaged before each update (default 1). */
  accumulationSteps?: number;
  /** Clip the global gradient norm to this (default: no clipping). */
  clipNorm?: number | null;
  /** Stop with an error after this many consecutive skipped (non-finite) steps (default 5). */
  maxConsecutiveSkips?: number;
  /** Calls manualSeed(seed) before the first step of a fresh run (a resumed run restores the saved RNG state). */
  seed?: number;
  /** Append one JSON line per step here. */
  metricsPath?: string;
  /** Progress line on stderr: 'auto' (default) draws only on a TTY without CI set; true/false force it. */
  progress?: boolean | 'auto';
  /** The progress line's name, e.g. a stage of a multi-stage recipe (default 'train'). */
  progressLabel?: string;
  /** Save training checkpoints (weights, moments, step, RNG state) for exact resumption. */
  checkpoint?: CheckpointOptions;
  /** Called after every step with its metrics. */
  onStep?: (metrics: StepMetrics) => void;
}

/** What {@link Trainer.fit} did. */
export interface FitResult {
  /** Steps completed in total (the trainer's step after fit). */
  step: number;
  /** Steps skipped in total because the loss or gradient norm was not finite. */
  skippedSteps: number;
  /** Metrics of the steps this call ran. */
  history: StepMetrics[];
}

/** Thrown when too many consecutive steps had a non-finite loss or gradient norm. */
export class TrainingDivergedError extends Error {
  /**
   * @param message What happened and what to try.
   * @param step The step at which training stopped.
   * @param consecutiveSkips Non-finite steps in a row.
   */
  constructor(
    message: string,
    readonly step: number,
    readonly consecutiveSkips: number,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/**
 * The training loop: AdamW with optional clipping and gradient accumulation, skipping non-finite steps, metrics
 * JSONL, a progress line, and checkpoints that resume to the identical loss curve (batches are a function of the
 * step).
 */
export class Trainer<M extends Module, B> {
  /** The model being trained (the caller's). */
  readonly model: M;
  /** The optimizer (built by the trainer from options, or the caller's). */
  readonly optimizer: AdamW;
  private readonly options: TrainerOptions<M, B>;
  private readonly ownsOptimizer: boolean;
  private readonly accumulationSteps: number;
  private readonly maxConsecutiveSkips: number;
  private currentStep = 0;
  private skippedSteps = 0;
  private consecutiveSkips = 0;
  private started = false;
  private resumed = false;
  private metrics: MetricsLog | null = null;

  constructor(options: TrainerOptions<M, B>) {
    this.options = options;
    this.model = options.model;
    if (!(Number.isInteger(options.steps) && options.steps >= 0)) {
      throw new Error(`Trainer: steps must be an integer >= 0, got ${options.steps}`);
    }
    checkSynchronous(options.loss, 'loss');
    checkSynchronous(options.batchAt, 'batchAt');
    this.accumulationSteps = options.accumulationSteps ?? 1;
    if (!(Number.isInteger(this.accumulationSteps) && this.accumulationSteps >= 1)) {
      throw new Error(`Trainer: accumulationSteps must be an integer >= 1, got ${this.accumulationSteps}`);
    }
    this.maxConsecutiveSkips = options.maxConsecutiveSkips ?? 5;
    if (!(Number.isInteger(this.maxConsecutiveSkips) && this.maxConsecutiveSkips >= 1)) {
      throw new Error(`Trainer: maxConsecutiveSkips must be an integer >= 1, got ${this.maxConsecutiveSkips}`);
    }
    const clip = options.clipNorm;
    if (clip != null && !(clip > 0 && Number.isFinite(clip))) throw new Error(`Trainer: clipNorm must be > 0 or null, got ${clip}`);
    const every = options.checkpoint?.every;
    if (every !== undefined && !(Number.isInteger(every) && every >= 1)) {
      throw new Error(`Trainer: checkpoint.every must be an integer >= 1, got ${every}`);
    }
    if (options.checkpoint?.keepLast !== undefined) assertKeepLast(options.checkpoint.keepLast, 'Trainer: checkpoint');
    if (options.optimizer instanceof AdamW) {
      this.optimizer = options.optimizer;
      this.ownsOptimizer = false;
    } else {
      this.optimizer = new AdamW(this.model, options.optimizer ?? {});
      this.ownsOptimizer = true;
    }
  }

  /** Steps completed: the next step to run. */
  get step(): number {
    return this.currentStep;
  }

  /** Steps skipped so far because the loss or gradient norm was not finite. */
  get skipped(): number {
    return this.skippedSteps;
  }

  /** The trainer's position, as a checkpoint stores it. */
  state(): TrainerState {
    return {
      step: this.currentStep,
      rngState: globalRandom().getState(),
      skippedSteps: this.skippedSteps,
      consecutiveSkips: this.consecutiveSkips,
      learningRate: this.optimizer.learningRateAt(this.currentStep),
    };
  }

  /**
   * Runs one optimizer step (all its micro-batches). A non-finite loss or gradient norm skips the update;
   * after maxConsecutiveSkips such steps in a row this throws a TrainingDivergedError.
   */
  trainStep(): StepMetrics {
    this.ensureStarted();
    const step = this.currentStep;
    const startedAt = performance.now();
    const lr = this.optimizer.learningRateAt(step);
    const variables = this.model.trainableVariables();
    const { loss, grads } = accumulateGradients(
      (microStep) => {
        const batch = this.options.batchAt(step, microStep);
        if (isThenable(batch)) {
          swallowRejection(batch);
          throw new Error(`Trainer: step ${step}: batchAt(${step}, ${microStep}) returned a Promise; ${SYNC_BATCH}`);
        }
        return this.options.loss(this.model, batch, { step, microStep });
      },
      variables,
      this.accumulationSteps,
      'mean',
      `Trainer: step ${step}`,
    );
    let gradNorm = NaN;
    let skipReason: string | null = null;
    try {
      gradNorm = globalNorm(grads);
      if (!Number.isFinite(loss)) skipReason = `loss is ${loss}`;
      else if (!Number.isFinite(gradNorm)) skipReason = `gradient norm is ${gradNorm}`;
      if (skipReason === null) {
        const clipNorm = this.options.clipNorm;
        if (clipNorm != null) {
          const clipped = clipByGlobalNorm(grads, clipNorm, gradNorm);
          try {
            this.optimizer.applyGradients(clipped.grads, lr);
          } finally {
            disposeAll(clipped.grads);
          }
        } else {
          this.optimizer.applyGradients(grads, lr);
        }
      }
    } finally {
      disposeAll(grads);
    }

    const skipped = skipReason !== null;
    if (skipped) {
      this.skippedSteps++;
      this.consecutiveSkips++;
    } else {
      this.consecutiveSkips = 0;
    }
    this.currentStep++;
    const metrics: StepMetrics = {
      step,
      loss: Number.isFinite(loss) ? loss : null,
      lr,
      gradNorm: Number.isFinite(gradNorm) ? gradNorm : null,
      skipped,
      skippedTotal: this.skippedSteps,
      time: (performance.now() - startedAt) / 1000,
      timestamp: Date.now(),
    };
    this.metrics?.write(metrics);
    this.options.onStep?.(metrics);

    if (skipped && this.consecutiveSkips >= this.maxConsecutiveSkips) {
      const clipAdvice = this.options.clipNorm == null ? 'set clipNorm (e.g. 1.0)' : `lower clipNorm (now ${this.options.clipNorm})`;
      throw new TrainingDivergedError(
        `Trainer: step ${step}: ${this.consecutiveSkips} consecutive steps had a non-finite loss or gradient ` +
          `(${skipReason}); stopping. The weights are those of the last good step (no non-finite update was applied). ` +
          `Try: lower the learning rate (now ${lr}), a longer warmup, ${clipAdvice}; check batchAt(${step}) for ` +
          'NaN/Inf inputs or out-of-range labels; guard log/divide/sqrt in the loss with an epsilon; ' +
          'or resume from the last checkpoint with those changes.',
        step,
        this.consecutiveSkips,
      );
    }
    return metrics;
  }

  /** Trains until `steps`, drawing progress, logging metrics and checkpointing as configured. */
  async fit(): Promise<FitResult> {
    const total = this.options.steps;
    const history: StepMetrics[] = [];
    const checkpoint = this.options.checkpoint;
    const progress = new ProgressDisplay({ total, start: this.currentStep, enabled: this.options.progress ?? 'auto', label: this.options.progressLabel });
    let savedAt = -1;
    try {
      while (this.currentStep < total) {
        const metrics = this.trainStep();
        history.push(metrics);
        progress.update(this.currentStep, { loss: metrics.loss, lr: metrics.lr, skipped: this.skippedSteps });
        if (checkpoint && this.currentStep % checkpoint.every === 0) {
          await this.saveCheckpoint();
          savedAt = this.currentStep;
        }
        // Let timers, signal handlers and stream writes run between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (checkpoint && savedAt !== this.currentStep && history.length > 0) await this.saveCheckpoint();
    } finally {
      progress.finish();
    }
    return { step: this.currentStep, skippedSteps: this.skippedSteps, history };
  }

  /**
   * Saves a checkpoint of the current position to `dir` (default: `checkpoint.dir/step-NNNNNNNN`, then older
   * ones beyond keepLast are deleted). Returns the folder written.
   */
  async saveCheckpoint(dir?: string): Promise<string> {
    const root = this.options.checkpoint?.dir;
    const target = dir ?? (root ? join(root, checkpointDirName(this.currentStep)) : null);
    if (!target) throw new Error('Trainer.saveCheckpoint: pass a folder or set the checkpoint.dir option');
    await saveTrainingCheckpoint(target, { model: this.model, optimizer: this.optimizer, state: this.state() });
    if (!dir && root) await pruneCheckpoints(root, this.options.checkpoint?.keepLast ?? 2);
    return target;
  }

  /**
   * Continues from a checkpoint: `path` is a checkpoint folder or a root holding step-* folders (the newest
   * intact one is used: a damaged newer one is skipped with a warning on stderr). Restores weights, optimizer
   * moments, step, skip counts and the global RNG state, all or nothing: every file is read and checked before
   * anything changes. Call on a freshly built trainer before training. Returns the step the run continues from.
   */
  async resume(path: string): Promise<number> {
    if (this.started) throw new Error('Trainer.resume: call before the first trainStep/fit of this trainer');
    const parts = { model: this.model, optimizer: this.optimizer };
    await recoverDirectory(path);
    const single = await fs.stat(join(path, CHECKPOINT_FILES.trainer)).then(() => true, () => false);
    const candidates = single ? [path] : (await listCheckpoints(path)).map((c) => c.dir).reverse();
    if (candidates.length === 0) {
      const exists = await fs.stat(path).then(() => true, () => false);
      throw new Error(
        exists
          ? `Trainer.resume: no complete checkpoint in ${path} (expected trainer.json or step-* folders holding it)`
          : `Trainer.resume: ${path} does not exist; pass a checkpoint folder or the checkpoint.dir of an earlier run`,
      );
    }
    const damaged: string[] = [];
    let checkpoint: ReadCheckpoint | null = null;
    for (const dir of candidates) {
      try {
        checkpoint = await readTrainingCheckpoint(dir, parts);
        break;
      } catch (error) {
        // A checkpoint that does not fit the model is the caller's mistake: say so rather than fall back.
        if (!(error instanceof CheckpointDamagedError) || single) throw error;
        damaged.push(error.message);
      }
    }
    if (!checkpoint) {
      throw new Error(`Trainer.resume: every checkpoint in ${path} is damaged:\n  ${damaged.join('\n  ')}`);
    }
    if (checkpoint.state.step > this.options.steps) {
      checkpoint.dispose();
      throw new Error(
        `Trainer.resume: checkpoint ${checkpoint.dir} is at step ${checkpoint.state.step}, beyond this run's steps (${this.options.steps}); raise steps`,
      );
    }
    if (damaged.length > 0) {
      console.warn(`Trainer.resume: skipped ${damaged.length} damaged checkpoint(s), resuming from ${checkpoint.dir}:\n  ${damaged.join('\n  ')}`);
    }
    const { state } = checkpoint;
    checkpoint.apply();
    this.currentStep = state.step;
    this.skippedSteps = state.skippedSteps;
    this.consecutiveSkips = state.consecutiveSkips;
    globalRandom().setState(state.rngState);
    this.resumed = true;
    return state.step;
  }

  /** Frees the optimizer if the trainer built it. The model stays the caller's. */
  dispose(): void {
    if (this.ownsOptimizer) this.optimizer.dispose();
  }

  private ensureStarted(): void {
    if (this.started) return;
    this.started = true;
    if (!this.resumed && this.options.seed !== undefined) manualSeed(this.options.seed);
    // A fresh run starts a fresh file; a resumed one drops lines logged after its checkpoint.
    if (this.options.metricsPath) this.metrics = new MetricsLog(this.options.metricsPath, { resumeAtStep: this.currentStep });
  }
}

const SYNC_BATCH =
  "it must return the batch synchronously, because it runs inside the step's gradient scope, which frees the tensors " +
  'it makes when the step ends. Load or decode the data up front (await it before fit(), keep it as plain arrays) and ' +
  'build the tensors in a synchronous batchAt.';

const SYNC_LOSS =
  'it must return a tf.Scalar synchronously, because gradients are recorded only while it runs. Prepare the data up ' +
  'front (await it before fit(), keep it as plain arrays) and do not await inside the loss.';

/** loss and batchAt run inside a synchronous gradient scope: refuse async functions before the first step. */
function checkSynchronous(fn: unknown, name: 'loss' | 'batchAt'): void {
  const signature = name === 'loss' ? '(model, batch, context) => tf.Scalar' : '(step, microStep) => batch';
  if (typeof fn !== 'function') throw new Error(`Trainer: ${name} must be a function ${signature}, got ${fn === null ? 'null' : typeof fn}`);
  if (fn.constructor?.name === 'AsyncFunction' || fn.constructor?.name === 'AsyncGeneratorFunction') {
    throw new Error(`Trainer: ${name} is an async function, but ${name === 'loss' ? SYNC_LOSS : SYNC_BATCH}`);
  }
}

function disposeAll(tensors: Record<string, tf.Tensor>): void {
  for (const t of Object.values(tensors)) t.dispose();
}
