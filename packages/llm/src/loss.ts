/**
 * The causal language-modelling loss: mean cross-entropy of the next token over the positions a mask selects.
 * Targets come already shifted (position t holds token t+1, as core's SequenceBatch targets and `shiftedTargets`
 * give them). Computed as logsumexp(logits) - logits[target] (stable, and without a [B*T, V] one-hot: the target
 * logit is gathered from the flat logits).
 *
 *   const { targets, mask } = shiftedTargets(ids, paddingMask);
 *   const loss = causalLMLoss(model.forward({ inputIds: ids, paddingMask }).logits, targets, mask);
 *   const stable = causalLMLoss(logits, targets, mask, { zLoss: 1e-5 });   // + 1e-5 * mean(log(Z)^2) (Chameleon)
 *
 * The z-loss option (PaLM, Chowdhery et al. 2022; Chameleon, Team 2024) adds coefficient * log(Z)^2 averaged over
 * the same positions, Z the softmax normaliser: it keeps logits from drifting upwards, which Chameleon needed to
 * train stably once image codes shared the softmax with text.
 */
import * as tf from '@tensorflow/tfjs';

/** Options of {@link causalLMLoss}. */
export interface CausalLMLossOptions {
  /** z-loss coefficient: adds coefficient * log(Z)^2 per counted position (default 0 = off; Chameleon 1e-5). */
  zLoss?: number;
}

/**
 * logits [B, T, V], targets int32 [B, T], mask [B, T] (1 counts, 0 ignored; other values weight positions) ->
 * scalar mean negative log-likelihood over the masked positions. Targets under a zero mask may hold anything
 * (e.g. -100); counted targets must lie in [0, V).
 */
export function causalLMLoss(logits: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor, options: CausalLMLossOptions = {}): tf.Scalar {
  const zCoefficient = options.zLoss ?? 0;
  if (!(Number.isFinite(zCoefficient) && zCoefficient >= 0)) {
    throw new Error(`causalLMLoss: zLoss must be a finite number >= 0 (e.g. 1e-5; 0 = off), got ${zCoefficient}`);
  }
  if (logits.rank !== 3) throw new Error(`causalLMLoss: logits must be [B, T, V], got [${logits.shape}]`);
  const [batch, length, vocab] = logits.shape as [number, number, number];
  for (const [name, t] of [['targets', targets], ['mask', mask]] as const) {
    if (t.rank !== 2 || t.shape[0] !== batch || t.shape[1] !== length) {
      throw new Error(`causalLMLoss: ${name} must be [${batch}, ${length}] to match logits [${logits.shape}], got [${t.shape}]`);
    }
  }
  if (targets.dtype !== 'int32') throw new Error(`causalLMLoss: targets must be int32, got ${targets.dtype}; cast with tf.cast(targets, 'int32')`);
  const maskValues = mask.dataSync();
  const targetValues = targets.dataSync();
  let weight = 0;
  for (let i = 0; i < maskValues.length; i++) {
    const m = maskValues[i]!;
    if (m === 0) continue;
    weight += m;
    const id = targetValues[i]!;
    if (!(id >= 0 && id < vocab)) {
      throw new Error(
        `causalLMLoss: target ${id} at row ${Math.floor(i / length)}, position ${i % length} is outside the vocabulary [0, ${vocab}) ` +
          'but its mask is non-zero; mask it out or fix the targets',
      );
    }
  }
  if (!(weight > 0)) {
    throw new Error('causalLMLoss: the mask selects no position (all zeros), so the mean loss is undefined; check the loss mask');
  }
  return tf.tidy(() => {
    const weights = mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
    const safeTargets = tf.where(tf.notEqual(weights, 0), targets, tf.zerosLike(targets)); // masked ids may be -100
    const flatLogits = tf.reshape(logits, [batch * length * vocab]);
    const rowStart = tf.mul(tf.range(0, batch * length, 1, 'int32'), tf.scalar(vocab, 'int32'));
    const flatIndex = tf.add(rowStart, tf.reshape(safeTargets, [batch * length]));
    const picked = tf.reshape(tf.gather(flatLogits, flatIndex), [batch, length]);
    const logZ = tf.logSumExp(logits, -1); // [B, T]
    const nll = tf.sub(logZ, picked);
    const perPosition = zCoefficient > 0 ? tf.add(nll, tf.mul(tf.square(logZ), zCoefficient)) : nll;
    return tf.div(tf.sum(tf.mul(perPosition, weights)), weight) as tf.Scalar;
  });
}

/**
 * The z-loss alone: coefficient * the weighted mean of log(Z)^2 over the masked positions, Z = sum(exp(logits))
 * per position. logits [B, T, V], mask [B, T]; a mask selecting nothing gives 0 (nothing to stabilise).
 */
export function zLoss(logits: tf.Tensor, mask: tf.Tensor, coefficient: number): tf.Scalar {
  if (logits.rank !== 3) throw new Error(`zLoss: logits must be [B, T, V], got [${logits.shape}]`);
  if (mask.rank !== 2 || mask.shape[0] !== logits.shape[0] || mask.shape[1] !== logits.shape[1]) {
    throw new Error(`zLoss: mask must be [${logits.shape[0]}, ${logits.shape[1]}] to match logits [${logits.shape}], got [${mask.shape}]`);
  }
  if (!(Number.isFinite(coefficient) && coefficient >= 0)) throw new Error(`zLoss: coefficient must be a finite number >= 0, got ${coefficient}`);
  return tf.tidy(() => {
    const weights = mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
    const total = tf.sum(weights);
    const sum = tf.sum(tf.mul(tf.square(tf.logSumExp(logits, -1)), weights));
    return tf.mul(tf.div(sum, tf.maximum(total, 1e-12)), coefficient) as tf.Scalar;
  });
}

/**
 * Next-token targets for a plain text batch: targets[t] = ids[t + 1] (0 at the last position), and the mask is 1
 * where both t and t + 1 are real tokens (so padding neither predicts nor is predicted). ids int32 [B, T],
 * paddingMask [B, T] (default all ones). The caller owns the returned tensors.
 */
export function shiftedTargets(ids: tf.Tensor, paddingMask?: tf.Tensor): { targets: tf.Tensor2D; mask: tf.Tensor2D } {
  if (ids.rank !== 2 || ids.dtype !== 'int32') throw new Error(`shiftedTargets: ids must be int32 [B, T], got ${ids.dtype} [${ids.shape}]`);
  const [batch, length] = ids.shape as [number, number];
  if (paddingMask && (paddingMask.rank !== 2 || paddingMask.shape[0] !== batch || paddingMask.shape[1] !== length)) {
    throw new Error(`shiftedTargets: paddingMask must be [${batch}, ${length}] like ids, got [${paddingMask.shape}]`);
  }
  return tf.tidy(() => {
    const real = paddingMask ? tf.cast(paddingMask, 'float32') : tf.ones([batch, length]);
    const next = (t: tf.Tensor, fill: tf.Tensor) => tf.concat([tf.slice(t, [0, 1], [batch, length - 1]), fill], 1);
    const targets = next(ids, tf.zeros([batch, 1], 'int32')) as tf.Tensor2D;
    const mask = tf.mul(real, next(real, tf.zeros([batch, 1]))) as tf.Tensor2D;
    return { targets, mask };
  });
}
