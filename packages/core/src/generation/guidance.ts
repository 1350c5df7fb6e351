/**
 * Classifier-free guidance on next-token logits (Ho & Salimans 2021, "Classifier-Free Diffusion Guidance"),
 * as autoregressive image generators use it (Janus, Chameleon/Lumina-mGPT, MusicGen): run each prompt with and
 * without its condition and mix uncond + scale * (cond - uncond). scale 1 gives the conditional logits, larger
 * scales push further from the unconditional ones.
 *
 * Apply guidance to raw logits, before any filter: filters write -Infinity, and -Infinity - -Infinity is NaN.
 */
import * as tf from '@tensorflow/tfjs';
import { checkLogits } from './logits-processors';

/** How a doubled batch [2B, V] holds its conditional and unconditional rows. */
export type GuidanceBatchLayout =
  /** rows 0..B-1 conditional, rows B..2B-1 their unconditional partners (`[cond; uncond]`). */
  | 'halves'
  /** rows 2i conditional, 2i+1 unconditional (Janus's layout). */
  | 'interleaved';

/** uncond + scale * (cond - uncond) for two [B, V] logits tensors; returns a new [B, V] tensor. */
export function classifierFreeGuidance(cond: tf.Tensor2D, uncond: tf.Tensor2D, scale: number): tf.Tensor2D {
  checkLogits(cond, 'classifierFreeGuidance (cond)');
  checkLogits(uncond, 'classifierFreeGuidance (uncond)');
  if (cond.shape[0] !== uncond.shape[0] || cond.shape[1] !== uncond.shape[1]) {
    throw new Error(
      `classifierFreeGuidance: conditional and unconditional logits must have the same shape, got [${cond.shape}] and [${uncond.shape}]`,
    );
  }
  checkScale(scale);
  checkUnfiltered(cond, 'conditional');
  checkUnfiltered(uncond, 'unconditional');
  return tf.tidy(() => tf.add(uncond, tf.mul(tf.sub(cond, uncond), tf.scalar(scale))));
}

/**
 * Guidance for a model run once on a doubled batch [2B, V] (cheaper than two calls); returns [B, V]. After
 * sampling, give each conditional row's token to its unconditional partner as well, so both continue alike.
 */
export function classifierFreeGuidanceFromBatch(
  logits: tf.Tensor2D,
  scale: number,
  layout: GuidanceBatchLayout = 'halves',
): tf.Tensor2D {
  const [rows, vocab] = checkLogits(logits, 'classifierFreeGuidanceFromBatch');
  if (rows % 2 !== 0) {
    throw new Error(
      `classifierFreeGuidanceFromBatch: expected an even number of rows (conditional and unconditional pairs), got ${rows}; run the model on the prompts and their unconditional copies together`,
    );
  }
  checkScale(scale);
  return tf.tidy(() => {
    const batch = rows / 2;
    let cond: tf.Tensor2D;
    let uncond: tf.Tensor2D;
    if (layout === 'halves') {
      cond = tf.slice(logits, [0, 0], [batch, vocab]);
      uncond = tf.slice(logits, [batch, 0], [batch, vocab]);
    } else if (layout === 'interleaved') {
      const pairs = tf.reshape(logits, [batch, 2, vocab]);
      cond = tf.reshape(tf.slice(pairs, [0, 0, 0], [batch, 1, vocab]), [batch, vocab]);
      uncond = tf.reshape(tf.slice(pairs, [0, 1, 0], [batch, 1, vocab]), [batch, vocab]);
    } else {
      throw new Error(`classifierFreeGuidanceFromBatch: layout must be 'halves' or 'interleaved', got '${String(layout)}'`);
    }
    return classifierFreeGuidance(cond, uncond, scale);
  });
}

/**
 * A -Infinity logit (what filters write) would make the mix NaN. One scalar read per call: a decoding step reads
 * the logits anyway, and a NaN found later by the sampler could no longer be traced to guidance.
 */
function checkUnfiltered(logits: tf.Tensor2D, which: string): void {
  const filtered = tf.tidy(() => tf.any(tf.equal(logits, tf.scalar(-Infinity))).dataSync()[0]);
  if (!filtered) return;
  const vocab = logits.shape[1]!;
  const at = logits.dataSync().findIndex((v) => v === -Infinity);
  throw new Error(
    `classifierFreeGuidance: the ${which} logits are -Infinity at row ${Math.floor(at / vocab)}, token id ${at % vocab}, as ` +
      'a filter (top-k, top-p, min-p, an allow or suppress list) leaves them; guidance subtracts logits, and ' +
      '-Infinity - -Infinity is NaN. Apply guidance to the raw logits, before any filter.',
  );
}

function checkScale(scale: number): void {
  if (!Number.isFinite(scale)) throw new Error(`classifier-free guidance: expected a finite scale, got ${scale}`);
}
