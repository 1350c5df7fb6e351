/**
 * One training stage through core's Trainer with the settings the multi-stage examples share: AdamW, warmup over
 * 5% of the steps then cosine decay to a tenth of the peak, global-norm clipping at 1, a progress line named after
 * the stage, and the trainer disposed however the stage ends.
 */
import { Trainer, warmupCosineSchedule, type Module, type StepMetrics, type TrainerOptions } from '@chimera/core';

export interface StageRunOptions {
  steps: number;
  /** Peak learning rate. */
  learningRate: number;
  /** Seeds the Trainer (and, in the examples, which training items are drawn). */
  seed: number;
  metricsPath?: string;
  progress?: boolean | 'auto';
  onStep?: (metrics: StepMetrics) => void;
}

/** Runs the stage and returns its per-step metrics. */
export async function runStage<M extends Module, B>(
  model: M,
  options: StageRunOptions,
  stage: Pick<TrainerOptions<M, B>, 'batchAt' | 'loss'> & { label: string; weightDecay: number },
): Promise<StepMetrics[]> {
  const trainer = new Trainer<M, B>({
    model,
    steps: options.steps,
    seed: options.seed,
    optimizer: {
      learningRate: warmupCosineSchedule({ peak: options.learningRate, totalSteps: options.steps, floor: options.learningRate / 10 }),
      weightDecay: stage.weightDecay,
    },
    clipNorm: 1,
    metricsPath: options.metricsPath,
    progress: options.progress ?? false,
    progressLabel: stage.label,
    onStep: options.onStep,
    batchAt: stage.batchAt,
    loss: stage.loss,
  });
  try {
    return (await trainer.fit()).history;
  } finally {
    trainer.dispose();
  }
}
