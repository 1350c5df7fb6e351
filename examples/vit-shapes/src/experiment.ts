/**
 * One experiment: a small ViT classifier built from scratch, trained through core's Trainer (AdamW, warmup +
 * cosine, global-norm clipping) on freshly generated training images, and scored on the held-out test split
 * before and after training (progress on the validation split while training). Used by the training script
 * and, with a smaller setting, by the test.
 */
import { Trainer, warmupCosineSchedule, type StepMetrics } from '@chimera/core';
import { ShapesDataset, type ShapesOptions } from '@chimera-examples/shapes-dataset';
import { classificationBatch, trainingIndices } from './batches';
import { evaluateAccuracy, type AccuracyResult } from './evaluate';
import { DEFAULT_CLASSIFIER_SIZE, buildClassifier, classificationLoss, type ClassifierSize, type Pooling, type ShapeClassifier } from './model';

export interface ExperimentOptions {
  /** The generated data (imageSize is taken from the model size). */
  data?: Omit<ShapesOptions, 'imageSize' | 'shapesPerImage'>;
  model?: Partial<ClassifierSize>;
  pooling?: Pooling;
  steps: number;
  batchSize: number;
  /** Peak learning rate of the warmup + cosine schedule (it decays to a tenth of this). */
  learningRate: number;
  /** Default: 5% of the steps. */
  warmupSteps?: number;
  /** AdamW's decoupled weight decay (default 0.05). */
  weightDecay?: number;
  /** Global gradient-norm clip (default 1). */
  clipNorm?: number;
  /** Seeds the weights and which training images are drawn; the held-out images do not depend on it. */
  seed: number;
  /** Test-split images in the final score. */
  testExamples: number;
  /** Score this many validation images every `evalEvery` steps while training (default 0: never). */
  evalEvery?: number;
  validationExamples?: number;
  /** The Trainer's per-step JSONL metrics. */
  metricsPath?: string;
  /** Trainer's progress bar on stderr (default false). */
  progress?: boolean | 'auto';
  log?: (line: string) => void;
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
  model: ShapeClassifier;
  dataset: ShapesDataset;
  before: AccuracyResult;
  after: AccuracyResult;
  /** Seconds spent in training steps (evaluation excluded). */
  trainSeconds: number;
  /** Wall-clock seconds of the whole run, evaluations included. */
  totalSeconds: number;
  history: StepMetrics[];
  evals: EvalPoint[];
  parameterCount: number;
}

export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const { steps, batchSize, seed } = options;
  const log = options.log ?? (() => {});
  const startedAt = performance.now();
  const size = { ...DEFAULT_CLASSIFIER_SIZE, ...options.model };
  const dataset = new ShapesDataset({ ...options.data, imageSize: size.imageSize, shapesPerImage: 1 });
  const model = buildClassifier(size, dataset.kinds.length, seed, options.pooling);
  const parameterCount = model.countParameters({ trainableOnly: true });
  const before = evaluateAccuracy(model, dataset, 'test', options.testExamples);
  log(
    `${dataset.kinds.length} kinds (${dataset.kinds.join(', ')}), ${parameterCount} parameters, ${steps} steps of ${batchSize}; ` +
      `held-out accuracy before training ${percent(before.accuracy)}`,
  );

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
      weightDecay: options.weightDecay ?? 0.05,
    },
    clipNorm: options.clipNorm ?? 1,
    metricsPath: options.metricsPath,
    progress: options.progress ?? false,
    batchAt: (step) => classificationBatch(dataset, 'train', trainingIndices(seed, step, batchSize)),
    loss: (m, batch) => classificationLoss(m.forward(batch.pixels), batch.labels),
    onStep: (metrics) => {
      trainSeconds += metrics.time;
      const done = metrics.step + 1;
      const every = options.evalEvery ?? 0;
      if (every > 0 && (done % every === 0 || done === steps)) {
        const accuracy = evaluateAccuracy(model, dataset, 'validation', options.validationExamples ?? 256).accuracy;
        const point = { step: done, seconds: (performance.now() - startedAt) / 1000, accuracy, loss: metrics.loss };
        evals.push(point);
        options.onEval?.(point);
        log(
          `step ${String(done).padStart(5)}/${steps}  loss ${metrics.loss?.toFixed(4) ?? 'NaN'}  lr ${metrics.lr.toExponential(2)}  ` +
            `validation accuracy ${percent(accuracy)}  ${point.seconds.toFixed(1)} s`,
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
  const after = evaluateAccuracy(model, dataset, 'test', options.testExamples);
  const totalSeconds = (performance.now() - startedAt) / 1000;
  log(`held-out accuracy after training ${percent(after.accuracy)} (${after.correct}/${after.total}); ${totalSeconds.toFixed(1)} s in all`);
  return { model, dataset, before, after, trainSeconds, totalSeconds, history, evals, parameterCount };
}

export function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(1)}%`;
}
