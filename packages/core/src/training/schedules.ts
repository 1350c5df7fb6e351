/**
 * Learning-rate schedules as pure functions of the (0-based) step, so a resumed run needs only the step to
 * be back on the curve. Warmup + cosine follows Loshchilov & Hutter 2017 (SGDR, without restarts), with a
 * linear warmup (Goyal et al. 2017) and a floor the decay ends at.
 */

/** Learning rate for a 0-based step. Must be pure: the same step always gives the same rate. */
export type LearningRateSchedule = (step: number) => number;

/** Options of {@link constantSchedule}. */
export interface ConstantScheduleOptions {
  /** Ramp linearly up to `learningRate` over this many steps first (default 0). */
  warmupSteps?: number;
}

/** A constant learning rate, after an optional linear warmup from 0. */
export function constantSchedule(learningRate: number, options: ConstantScheduleOptions = {}): LearningRateSchedule {
  checkRate('constantSchedule', 'learningRate', learningRate);
  const warmupSteps = checkSteps('constantSchedule', 'warmupSteps', options.warmupSteps ?? 0);
  return (step) => {
    checkStep(step);
    return step < warmupSteps ? warmup(learningRate, step, warmupSteps) : learningRate;
  };
}

/** Options of {@link warmupCosineSchedule}. */
export interface WarmupCosineOptions {
  /** The rate reached at the end of warmup. */
  peak: number;
  /**
   * Linear warmup steps (default: 5% of totalSteps rounded, at least 1 and at most totalSteps - 1, like HF's
   * warmup_ratio 0.05).
   */
  warmupSteps?: number;
  /** The step at which the cosine reaches the floor; later steps stay at the floor. */
  totalSteps: number;
  /** The rate the decay ends at (default 0; 10% of peak is a common choice). */
  floor?: number;
}

/**
 * Linear warmup to `peak` over `warmupSteps`, then a half cosine from `peak` at step `warmupSteps` down to
 * `floor` at step `totalSteps`. Warmup starts at peak / (warmupSteps + 1), not 0, so no step is wasted.
 */
export function warmupCosineSchedule(options: WarmupCosineOptions): LearningRateSchedule {
  const { peak } = options;
  const floor = options.floor ?? 0;
  checkRate('warmupCosineSchedule', 'peak', peak);
  checkRate('warmupCosineSchedule', 'floor', floor);
  if (floor > peak) throw new Error(`warmupCosineSchedule: floor (${floor}) must not exceed peak (${peak}); lower the floor`);
  const totalSteps = checkSteps('warmupCosineSchedule', 'totalSteps', options.totalSteps);
  const warmupSteps = checkSteps('warmupCosineSchedule', 'warmupSteps', options.warmupSteps ?? defaultWarmup(totalSteps));
  if (totalSteps <= warmupSteps) {
    throw new Error(
      `warmupCosineSchedule: totalSteps (${totalSteps}) must exceed warmupSteps (${warmupSteps}); ` +
        'use constantSchedule with warmupSteps for a schedule without decay',
    );
  }
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return warmup(peak, step, warmupSteps);
    const progress = Math.min(1, (step - warmupSteps) / (totalSteps - warmupSteps));
    return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** 5% of the steps, at least 1 and leaving at least one step of decay (0 for a one-step run). */
function defaultWarmup(totalSteps: number): number {
  return Math.min(Math.max(1, Math.round(totalSteps * 0.05)), Math.max(0, totalSteps - 1));
}

function warmup(target: number, step: number, warmupSteps: number): number {
  return (target * (step + 1)) / (warmupSteps + 1);
}

function checkRate(fn: string, name: string, value: number): void {
  if (!(Number.isFinite(value) && value >= 0)) throw new Error(`${fn}: ${name} must be a finite number >= 0, got ${value}`);
}

function checkSteps(fn: string, name: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new Error(`${fn}: ${name} must be an integer >= 0, got ${value}`);
  return value;
}

function checkStep(step: number): void {
  if (!(Number.isInteger(step) && step >= 0)) {
    throw new Error(`learning-rate schedule: step must be an integer >= 0, got ${step}`);
  }
}
