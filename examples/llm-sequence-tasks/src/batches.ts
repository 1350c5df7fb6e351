/**
 * Packs examples into the tensors a causal LM trains on: right-padded ids, next-token targets, and a loss mask
 * that selects only the positions whose next token belongs to the answer (the prompt is given, not learned).
 */
import * as tf from '@tensorflow/tfjs';
import { shiftedTargets } from '@chimera/llm';
import { PAD } from './vocabulary';
import type { Example } from './tasks';

export interface PackedBatch {
  /** int32 [B, T]: prompt, answer, then PAD. */
  ids: tf.Tensor2D;
  /** int32 [B, T]: targets[t] = ids[t + 1]. */
  targets: tf.Tensor2D;
  /** float32 [B, T]: 1 where targets[t] is an answer token (EOS included), else 0. */
  lossMask: tf.Tensor2D;
}

/** Row-major ids [B * T] and answer-prediction mask [B * T] as plain arrays (what the tensors are built from). */
export function packRows(examples: readonly Example[], length: number): { ids: Int32Array; answerMask: Float32Array } {
  const ids = new Int32Array(examples.length * length).fill(PAD);
  const answerMask = new Float32Array(examples.length * length);
  examples.forEach((example, row) => {
    const tokens = [...example.prompt, ...example.answer];
    if (tokens.length > length) {
      throw new Error(`packRows: example ${row} has ${tokens.length} tokens but the batch length is ${length}; raise the length`);
    }
    ids.set(tokens, row * length);
    // Position t predicts token t + 1: the answer's tokens are predicted from prompt.length - 1 onwards.
    for (let t = example.prompt.length - 1; t < tokens.length - 1; t++) answerMask[row * length + t] = 1;
  });
  return { ids, answerMask };
}

/** The training tensors of a batch; the caller disposes them (inside the Trainer's tidy they are freed for you). */
export function packBatch(examples: readonly Example[], length: number): PackedBatch {
  const rows = packRows(examples, length);
  const shape: [number, number] = [examples.length, length];
  return tf.tidy(() => {
    const ids = tf.tensor2d(rows.ids, shape, 'int32');
    // shiftedTargets also masks the last position (it has no next token); the answer mask is stricter still.
    const { targets, mask } = shiftedTargets(ids);
    const lossMask = tf.mul(mask, tf.tensor2d(rows.answerMask, shape)) as tf.Tensor2D;
    return { ids, targets, lossMask };
  });
}
