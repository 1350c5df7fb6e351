import * as tf from '@tensorflow/tfjs';

/**
 * Runs `fn` and throws if it leaves tensors behind. Tensors the function returns are the caller's and are
 * disposed here after counting, so pass a function that returns what it wants to inspect, or nothing.
 */
export async function expectNoLeaks<T>(fn: () => T | Promise<T>, label = 'call'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const returned = collectTensors(result);
  const after = tf.memory().numTensors - returned.length;
  if (after !== before) {
    throw new Error(`${label} leaked ${after - before} tensor(s): ${before} before, ${after} after`);
  }
  return result;
}

/** The synchronous form, for forward passes. */
export function expectNoLeaksSync<T>(fn: () => T, label = 'call'): T {
  const before = tf.memory().numTensors;
  const result = fn();
  const after = tf.memory().numTensors - collectTensors(result).length;
  if (after !== before) {
    throw new Error(`${label} leaked ${after - before} tensor(s): ${before} before, ${after} after`);
  }
  return result;
}

function collectTensors(value: unknown, seen = new Set<unknown>()): tf.Tensor[] {
  if (value instanceof tf.Tensor) return seen.has(value) ? [] : (seen.add(value), [value]);
  if (value === null || typeof value !== 'object' || seen.has(value)) return [];
  seen.add(value);
  const out: tf.Tensor[] = [];
  for (const v of Array.isArray(value) ? value : Object.values(value)) out.push(...collectTensors(v, seen));
  return out;
}
