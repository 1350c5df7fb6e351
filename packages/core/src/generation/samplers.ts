/**
 * Token samplers: greedy (argmax) and seeded sampling from processed logits [B, V].
 *
 * Both read the logits once and pick on the JS side rather than with tensor ops (softmax, cumsum,
 * multinomial), because:
 * - a decoding step must end with the ids in JS anyway (stop checks, the next step's inputs, detokenising),
 *   so the one read is already paid for, and the O(B * V) scan is small next to a forward pass;
 * - draws come from Chimera's `Rng` (runtime/random.ts), so `manualSeed` fixes the tokens, and the same logits
 *   give the same tokens on every backend (tf.multinomial's stream differs between backends);
 * - the softmax and running sum use float64, so large vocabularies do not lose mass to float32 rounding.
 * Tensor-side work (temperature, top-k, top-p, guidance) stays in the logits processors.
 */
import * as tf from '@tensorflow/tfjs';
import { globalRandom, type Rng } from '../runtime/random';
import { checkLogits } from './logits-processors';

/** Argmax per row of logits [B, V]; ties go to the lowest id. Reads the tensor once, disposes nothing. */
export function greedyTokensSync(logits: tf.Tensor2D): number[] {
  const [, vocab] = checkLogits(logits, 'greedyTokens');
  return argmaxPerRow(logits.dataSync(), vocab);
}

/** `greedyTokensSync` with a non-blocking read (for backends where dataSync stalls, e.g. webgl). */
export async function greedyTokens(logits: tf.Tensor2D): Promise<number[]> {
  const [, vocab] = checkLogits(logits, 'greedyTokens');
  return argmaxPerRow(await logits.data(), vocab);
}

/**
 * One token per row of logits [B, V], drawn from softmax(logits) with `rng` (default: the global generator
 * that `manualSeed` sets). Exactly one draw per row, in row order, so the stream stays aligned across steps.
 */
export function sampleTokensSync(logits: tf.Tensor2D, rng: Rng = globalRandom()): number[] {
  const [, vocab] = checkLogits(logits, 'sampleTokens');
  return samplePerRow(logits.dataSync(), vocab, rng);
}

/** `sampleTokensSync` with a non-blocking read. */
export async function sampleTokens(logits: tf.Tensor2D, rng: Rng = globalRandom()): Promise<number[]> {
  const [, vocab] = checkLogits(logits, 'sampleTokens');
  const values = await logits.data();
  return samplePerRow(values, vocab, rng);
}

/** Argmax of each length-`vocab` row of a flat [B * V] array; ties to the lowest id; NaN is an error. */
export function argmaxPerRow(values: ArrayLike<number>, vocab: number): number[] {
  const batch = rowCount(values, vocab, 'argmaxPerRow');
  const tokens: number[] = new Array(batch);
  for (let b = 0; b < batch; b++) {
    const offset = b * vocab;
    let best = 0;
    let bestValue = values[offset]!;
    for (let i = 0; i < vocab; i++) {
      const v = values[offset + i]!;
      if (Number.isNaN(v)) throw nanError('argmaxPerRow', b, i);
      if (v > bestValue) {
        bestValue = v;
        best = i;
      }
    }
    tokens[b] = best;
  }
  return tokens;
}

/** Draws one id per row of a flat [B * V] logits array from its softmax (float64), using one rng draw per row. */
export function samplePerRow(values: ArrayLike<number>, vocab: number, rng: Rng): number[] {
  const batch = rowCount(values, vocab, 'samplePerRow');
  const weights = new Float64Array(vocab);
  const tokens: number[] = new Array(batch);
  for (let b = 0; b < batch; b++) {
    const offset = b * vocab;
    let max = -Infinity;
    let maxId = 0;
    for (let i = 0; i < vocab; i++) {
      const v = values[offset + i]!;
      if (Number.isNaN(v)) throw nanError('samplePerRow', b, i);
      if (v > max) {
        max = v;
        maxId = i;
      }
    }
    if (max === -Infinity) {
      throw new Error(
        `samplePerRow: every token of row ${b} has logit -Infinity, so there is nothing to sample; loosen top-k/top-p/min-p or the allowed-token list`,
      );
    }
    if (max === Infinity) {
      throw new Error(
        `samplePerRow: logits row ${b} is +Infinity at token id ${maxId}, so its softmax is undefined. The logits overflowed: ` +
          'likely the model diverged or its weights hold Inf/NaN, activations overflowed (float16), a temperature near 0 ' +
          'blew them up, or a logits processor produced it; check the raw logits (before any processor) with tf.isFinite.',
      );
    }
    let total = 0;
    let lastPossible = 0;
    for (let i = 0; i < vocab; i++) {
      const w = Math.exp(values[offset + i]! - max);
      weights[i] = w;
      total += w;
      if (w > 0) lastPossible = i;
    }
    // Inverse-CDF draw; the fallback covers a threshold that rounding lifts past the final partial sum.
    const threshold = rng.next() * total;
    let chosen = lastPossible;
    let cumulative = 0;
    for (let i = 0; i < vocab; i++) {
      cumulative += weights[i]!;
      if (cumulative > threshold) {
        chosen = i;
        break;
      }
    }
    tokens[b] = chosen;
  }
  return tokens;
}

function rowCount(values: ArrayLike<number>, vocab: number, who: string): number {
  if (!Number.isInteger(vocab) || vocab < 1 || values.length % vocab !== 0) {
    throw new Error(`${who}: expected a flat array of whole rows of ${vocab} logits, got ${values.length} values`);
  }
  return values.length / vocab;
}

function nanError(who: string, row: number, id: number): Error {
  return new Error(
    `${who}: logits row ${row} is NaN at id ${id}, so no token can be picked. The logits are not finite: likely the ` +
      'model diverged or its weights hold NaN, activations overflowed (float16), or a logits processor produced NaN; ' +
      'check the raw logits (before any processor) with tf.isFinite to tell which.',
  );
}
