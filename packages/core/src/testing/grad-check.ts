/**
 * Finite-difference gradient checks. tfjs computes in float32 only, so the check uses central differences
 * with a moderate step and a mixed absolute/relative tolerance; a wrong gradient is off by far more.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../runtime/random';

/** Options of {@link gradCheck} and {@link gradCheckVariables}. */
export interface GradCheckOptions {
  /** Finite-difference step (default 1e-2). */
  eps?: number;
  /** Tolerance: |analytic - numeric| <= atol + rtol * |numeric| (defaults 5e-3, 2e-2). */
  atol?: number;
  /** Relative part of the tolerance (default 2e-2). */
  rtol?: number;
  /** Coordinates checked per tensor, chosen at random (default 24); all when the tensor is smaller. */
  maxCoords?: number;
  /** Seed of the random choice of coordinates. */
  seed?: number;
}

/** What a passing gradient check measured. */
export interface GradCheckReport {
  /** Coordinates compared. */
  checked: number;
  /** Largest |analytic - numeric| seen. */
  maxAbsError: number;
}

/**
 * Checks d f / d variables at their current values. `f` must be deterministic (no dropout). Variables are
 * restored afterwards. Throws with the worst coordinates when a gradient disagrees.
 */
export function gradCheckVariables(
  f: () => tf.Scalar,
  variables: tf.Variable[],
  options: GradCheckOptions = {},
): GradCheckReport {
  const eps = options.eps ?? 1e-2;
  const atol = options.atol ?? 5e-3;
  const rtol = options.rtol ?? 2e-2;
  const rng = new Rng(options.seed ?? 7);
  const { value, grads } = tf.variableGrads(f, variables);
  value.dispose();
  const failures: string[] = [];
  let checked = 0;
  let maxAbsError = 0;
  try {
    for (const variable of variables) {
      const grad = grads[variable.name];
      if (!grad) throw new Error(`gradCheck: no gradient for ${variable.name} (is it trainable and used by f?)`);
      const analytic = grad.dataSync();
      const original = variable.dataSync().slice();
      const coords = pickCoords(original.length, options.maxCoords ?? 24, rng);
      for (const i of coords) {
        const numeric = (evalAt(f, variable, original, i, original[i]! + eps) - evalAt(f, variable, original, i, original[i]! - eps)) / (2 * eps);
        const err = Math.abs(analytic[i]! - numeric);
        maxAbsError = Math.max(maxAbsError, err);
        checked++;
        if (err > atol + rtol * Math.abs(numeric)) {
          failures.push(`${variable.name}[${i}]: analytic ${analytic[i]!.toExponential(4)} vs numeric ${numeric.toExponential(4)}`);
        }
      }
      tf.tidy(() => variable.assign(tf.tensor(original, variable.shape, variable.dtype)));
    }
  } finally {
    Object.values(grads).forEach((g) => g.dispose());
  }
  if (failures.length > 0) {
    throw new Error(`gradient check failed at ${failures.length}/${checked} coordinates:\n  ${failures.slice(0, 10).join('\n  ')}`);
  }
  return { checked, maxAbsError };
}

/** Checks d f / d inputs for a function of plain tensors. */
export function gradCheck(
  f: (...inputs: tf.Tensor[]) => tf.Scalar,
  inputs: tf.Tensor[],
  options: GradCheckOptions = {},
): GradCheckReport {
  const variables = inputs.map((x) => tf.variable(x, true));
  try {
    return gradCheckVariables(() => f(...variables), variables, options);
  } finally {
    variables.forEach((v) => v.dispose());
  }
}

function evalAt(f: () => tf.Scalar, variable: tf.Variable, original: tf.TypedArray, index: number, value: number): number {
  const perturbed = original.slice();
  perturbed[index] = value;
  tf.tidy(() => variable.assign(tf.tensor(perturbed, variable.shape, variable.dtype)));
  return tf.tidy(() => f().dataSync()[0]!);
}

function pickCoords(size: number, max: number, rng: Rng): number[] {
  const all = Array.from({ length: size }, (_, i) => i);
  return size <= max ? all : rng.shuffle(all).slice(0, max);
}
