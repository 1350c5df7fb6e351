/**
 * Gradient clipping by global norm (Pascanu et al. 2013), with the formula of torch.nn.utils.clip_grad_norm_:
 * every gradient is scaled by min(1, maxNorm / (norm + 1e-6)), where norm is the L2 norm of all of them.
 */
import * as tf from '@tensorflow/tfjs';

/** Result of {@link clipByGlobalNorm}. */
export interface ClipResult {
  /** New tensors the caller owns (dispose them); unscaled copies when no clipping was needed. */
  grads: Record<string, tf.Tensor>;
  /** The global L2 norm before clipping; NaN or Infinity when a gradient is not finite. */
  norm: number;
  /** Whether the gradients were scaled down. */
  clipped: boolean;
}

/** The L2 norm over every element of every gradient, read back as a number. */
export function globalNorm(grads: Record<string, tf.Tensor>): number {
  const tensors = Object.values(grads);
  if (tensors.length === 0) return 0;
  return tf.tidy(() => {
    const squares = tensors.map((g) => tf.sum(tf.square(g)));
    return tf.sqrt(tf.addN(squares)).dataSync()[0]!;
  });
}

/**
 * Scales the gradients so their global norm is at most `maxNorm`. The given gradients are not modified or
 * disposed. When the norm is not finite nothing is scaled (the result would be all NaN): callers should
 * check `norm` and skip the update, as the Trainer does.
 */
export function clipByGlobalNorm(
  grads: Record<string, tf.Tensor>,
  maxNorm: number,
  /** The global norm when already computed (saves a pass and a read-back). */
  precomputedNorm?: number,
): ClipResult {
  if (!(maxNorm > 0 && Number.isFinite(maxNorm))) {
    throw new Error(`clipByGlobalNorm: maxNorm must be a finite number > 0, got ${maxNorm} (1.0 is the usual choice)`);
  }
  const norm = precomputedNorm ?? globalNorm(grads);
  const scale = maxNorm / (norm + 1e-6);
  const clipped = Number.isFinite(norm) && scale < 1;
  const out: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(grads)) out[name] = clipped ? tf.tidy(() => tf.mul(g, scale)) : tf.clone(g);
  return { grads: out, norm, clipped };
}
