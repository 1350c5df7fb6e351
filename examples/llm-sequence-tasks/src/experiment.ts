/**
 * One experiment: a Llama-family CausalLM built from scratch for a task, trained through core's Trainer (AdamW,
 * warmup + cosine, global-norm clipping) with the causal-LM loss on answer tokens only, and scored by held-out
 * exact match before and after training. Used by the training script and, with a smaller task, by the test.
 */
import { Trainer, manualSeed, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import { CausalLM, causalLMLoss, llamaConfig } from '@chimera/llm';
import { packBatch } from './batches';
import { exactMatch, type ExactMatchResult } from './evaluate';
import { heldOutSet, trainingBatch, type Example, type SequenceTask } from './tasks';
import { VOCAB_SIZE } from './vocabulary';

export interface ModelSize {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
}

export const DEFAULT_MODEL_SIZE: ModelSize = { hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128 };

export interface ExperimentOptions {
  task: SequenceTask;
  model?: Partial<ModelSize>;
  steps: number;
  batchSize: number;
  /** Peak learning rate of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Default: 5% of the steps. */
  warmupSteps?: number;
  /** AdamW's decoupled weight decay (default 0.01). */
  weightDecay?: number;
  /** Global gradient-norm clip (default 1). */
  clipNorm?: number;
  /** Seeds the weights and the training data; the held-out problems do not depend on it. */
  seed: number;
  /** Held-out problems in the final score. */
  evalExamples: number;
  /** Score held-out problems every this many steps while training (default 0: never). */
  evalEvery?: number;
  /** Held-out problems scored at each of those evaluations (default 256; the first of the final set). */
  progressExamples?: number;
  /** The Trainer's per-step JSONL metrics. */
  metricsPath?: string;
  /** Called with progress lines (step, loss, rate, held-out exact match). */
  log?: (line: string) => void;
  /** Called with each in-training evaluation. */
  onEval?: (point: EvalPoint) => void;
}

export interface EvalPoint {
  step: number;
  seconds: number;
  accuracy: number;
  loss: number | null;
}

export interface ExperimentResult {
  /** The trained model (the caller disposes it). */
  model: CausalLM;
  heldOut: Example[];
  /** Held-out exact match of the untrained model. */
  before: ExactMatchResult;
  after: ExactMatchResult;
  /** Seconds spent in training steps (evaluation excluded). */
  trainSeconds: number;
  /** Wall-clock seconds of the whole run, evaluations included. */
  totalSeconds: number;
  history: StepMetrics[];
  evals: EvalPoint[];
  parameterCount: number;
}

/** The held-out problems are fixed per task, whatever the training seed. */
const HELDOUT_SEED = 20240601;

/** A fresh CausalLM sized for the task's vocabulary and longest sequence, with weights drawn from `seed`. */
export function buildModel(task: SequenceTask, size: Partial<ModelSize>, seed: number): CausalLM {
  const { hiddenSize, numLayers, numHeads, intermediateSize } = { ...DEFAULT_MODEL_SIZE, ...size };
  manualSeed(seed);
  return new CausalLM(
    llamaConfig({ vocabSize: VOCAB_SIZE, hiddenSize, numLayers, numHeads, intermediateSize, maxPositionEmbeddings: task.maxLength }),
  );
}

export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const { task, steps, batchSize, seed } = options;
  const log = options.log ?? (() => {});
  const startedAt = performance.now();
  const heldOut = heldOutSet(task, options.evalExamples, HELDOUT_SEED);
  const progressSet = heldOut.slice(0, options.progressExamples ?? 256);
  const model = buildModel(task, options.model ?? {}, seed);
  const parameterCount = model.trainableVariables().reduce((sum, v) => sum + v.size, 0);
  const before = exactMatch(model, heldOut);
  log(`${task.name}: ${parameterCount} parameters, ${steps} steps of ${batchSize}; held-out exact match before training ${percent(before.accuracy)}`);

  const evals: EvalPoint[] = [];
  let trainSeconds = 0;
  const trainer = new Trainer({
    model,
    steps,
    seed,
    optimizer: {
      learningRate: warmupCosineSchedule({
        peak: options.learningRate,
        warmupSteps: options.warmupSteps,
        totalSteps: steps,
        floor: options.learningRate / 10,
      }),
      weightDecay: options.weightDecay ?? 0.01,
    },
    clipNorm: options.clipNorm ?? 1,
    metricsPath: options.metricsPath,
    progress: false,
    batchAt: (step) => packBatch(trainingBatch(task, batchSize, seed, step), task.maxLength),
    loss: (m, batch) => causalLMLoss(m.forward({ inputIds: batch.ids }).logits, batch.targets, batch.lossMask),
    onStep: (metrics) => {
      trainSeconds += metrics.time;
      const done = metrics.step + 1;
      const every = options.evalEvery ?? 0;
      if (every > 0 && (done % every === 0 || done === steps)) {
        const accuracy = exactMatch(model, progressSet).accuracy;
        const point = { step: done, seconds: (performance.now() - startedAt) / 1000, accuracy, loss: metrics.loss };
        evals.push(point);
        options.onEval?.(point);
        log(
          `step ${String(done).padStart(5)}/${steps}  loss ${metrics.loss?.toFixed(4) ?? 'NaN'}  lr ${metrics.lr.toExponential(2)}  ` +
            `held-out exact match ${percent(accuracy)} (${progressSet.length})  ${point.seconds.toFixed(1)} s`,
        );
      }
    },
  });
  let history: StepMetrics[];
  try {
    ({ history } = await trainer.fit());
  } finally {
    trainer.dispose();
  }
  const after = exactMatch(model, heldOut);
  const totalSeconds = (performance.now() - startedAt) / 1000;
  log(`held-out exact match after training ${percent(after.accuracy)} (${after.correct}/${after.total}); ${totalSeconds.toFixed(1)} s in all`);
  return { model, heldOut, before, after, trainSeconds, totalSeconds, history, evals, parameterCount };
}

export function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}
