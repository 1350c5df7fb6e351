/**
 * The self-attention bias of a packed batch, [B, 1, T, T] additive (0 = attend, MASKED_BIAS = do not). A query
 * sees a key when the key is real (not padding) and it is causal (key <= query), or both sit in the same
 * bidirectional media block (Transfusion), or both sit in the row's prefix (PaliGemma's prefix-LM).
 */
import type { SequenceLayout } from './layout';
import { MASK_VALUE } from '../nn/attention';

/** The attention layer's own mask value (large and finite: a fully masked row gives a uniform softmax, not NaN). */
export const MASKED_BIAS = MASK_VALUE;

type BiasLayout = Pick<SequenceLayout, 'batchSize' | 'length' | 'paddingMask' | 'block' | 'prefix'>;

/** Whether query q may attend to key k in row b. */
export function canAttend(layout: BiasLayout, b: number, q: number, k: number): boolean {
  const base = b * layout.length;
  if (!layout.paddingMask[base + k]) return false;
  if (k <= q) return true;
  const block = layout.block[base + q]!;
  if (block >= 0 && block === layout.block[base + k]) return true;
  return layout.prefix[base + q] === 1 && layout.prefix[base + k] === 1;
}

/** The bias as a flat [B*T*T] array (the head axis of [B, 1, T, T] has size 1). */
export function attentionBiasValues(layout: BiasLayout): Float32Array {
  const { batchSize: B, length: T } = layout;
  const values = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let q = 0; q < T; q++) {
      const rowBase = (b * T + q) * T;
      for (let k = 0; k < T; k++) if (!canAttend(layout, b, q, k)) values[rowBase + k] = MASKED_BIAS;
    }
  }
  return values;
}
