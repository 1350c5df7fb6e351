/**
 * Cross-attention masks from media locations, for gated cross-attention (Alayrac et al. 2022, "Flamingo";
 * Llama 3.2 Vision). Each row's media items fill slots 0..M-1 of N keys each; a text position sees only the
 * most recent item that started at or before it (`latest`, Flamingo) or every such item (`all`). Positions
 * before any item see nothing: their bias row is fully masked and `hasMedia` is 0 there, so a gate can zero
 * those rows.
 */
import * as tf from '@tensorflow/tfjs';
import { MASKED_BIAS } from './attention-bias';
import type { ItemFeatures } from './contract';
import type { PlacedMedia, SequenceLayout } from './layout';
import type { MediaKind } from './segments';

/** Options of {@link crossAttentionLayout} and {@link crossAttentionMask}. */
export interface CrossAttentionMaskOptions {
  /** Keys per item (e.g. a Perceiver resampler's 64 latents). */
  tokensPerItem: number;
  /** Which modality's items are attended; default the only modality in the batch. */
  modality?: string;
  /** Which kinds of items; default `cross` items when the modality has any, else all of its items. */
  kinds?: readonly MediaKind[];
  /** Default `latest`. */
  mode?: 'latest' | 'all';
  /** Slots per row (default: the most items any row has). */
  maxItems?: number;
}

/**
 * A cross-attention mask as plain arrays (see {@link crossAttentionMask} for tensors). M = maxItems slots of N =
 * tokensPerItem keys per row.
 */
export interface CrossAttentionLayout {
  /** Flat [B*T*M*N] bias values. */
  bias: Float32Array;
  /** Flat [B*T]: 1 where a real position sees at least one item. */
  hasMedia: Float32Array;
  /** Per row, the item in each slot (null for empty slots). */
  slots: (PlacedMedia | null)[][];
  /** The attended items in batch order: the order their features are given to `gatherMediaSlots`. */
  selected: PlacedMedia[];
  /** Slots per row (M). */
  maxItems: number;
  /** Keys per item (N). */
  tokensPerItem: number;
}

/** A Flamingo-style cross-attention mask as tensors; the caller owns (and disposes) `bias` and `hasMedia`. */
export interface CrossAttentionMask {
  /** [B, 1, T, M*N] additive bias. */
  bias: tf.Tensor4D;
  /** [B, T] float32. */
  hasMedia: tf.Tensor2D;
  /** Per row, the item in each slot (null for empty slots). */
  slots: (PlacedMedia | null)[][];
  /** The attended items in batch order: the order their features are given to {@link gatherMediaSlots}. */
  selected: PlacedMedia[];
  /** Slots per row (M). */
  maxItems: number;
  /** Keys per item (N). */
  tokensPerItem: number;
}

type MaskLayout = Pick<SequenceLayout, 'batchSize' | 'length' | 'media' | 'paddingMask'>;

/**
 * Which media slots each text position may attend, as plain arrays: the latest item that started at or before it
 * ('latest') or every such item ('all').
 */
export function crossAttentionLayout(layout: MaskLayout, options: CrossAttentionMaskOptions): CrossAttentionLayout {
  const { batchSize: B, length: T } = layout;
  const N = options.tokensPerItem;
  if (!Number.isInteger(N) || N < 1) throw new Error(`crossAttentionMask: tokensPerItem must be a positive integer, got ${N}`);
  const modalities = [...new Set(layout.media.map((m) => m.modality))];
  const modality = options.modality ?? (modalities.length === 1 ? modalities[0] : undefined);
  if (modality === undefined && modalities.length > 1) {
    throw new Error(`crossAttentionMask: the batch has items of ${modalities.join(', ')}; pass options.modality to choose one`);
  }
  const ofModality = layout.media.filter((m) => m.modality === modality);
  const kinds = options.kinds ?? (ofModality.some((m) => m.kind === 'cross') ? ['cross'] : undefined);
  const selected = ofModality.filter((m) => !kinds || kinds.includes(m.kind));
  const perRow: PlacedMedia[][] = Array.from({ length: B }, () => []);
  for (const item of selected) perRow[item.row]!.push(item);
  const most = Math.max(0, ...perRow.map((items) => items.length));
  const M = options.maxItems ?? Math.max(1, most);
  if (most > M) {
    const r = perRow.findIndex((items) => items.length > M);
    throw new Error(`crossAttentionMask: row ${r} has ${perRow[r]!.length} items but maxItems is ${M}; raise maxItems`);
  }
  const mode = options.mode ?? 'latest';
  const K = M * N;
  const bias = new Float32Array(B * T * K).fill(MASKED_BIAS);
  const hasMedia = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const items = perRow[b]!;
    for (let t = 0; t < T; t++) {
      if (!layout.paddingMask[b * T + t]) continue;
      let seen = 0;
      while (seen < items.length && items[seen]!.start <= t) seen++;
      if (seen === 0) continue;
      hasMedia[b * T + t] = 1;
      const rowBase = (b * T + t) * K;
      const first = mode === 'latest' ? seen - 1 : 0;
      bias.fill(0, rowBase + first * N, rowBase + seen * N);
    }
  }
  const slots = perRow.map((items) => Array.from({ length: M }, (_, j) => items[j] ?? null));
  return { bias, hasMedia, slots, selected, maxItems: M, tokensPerItem: N };
}

/** The mask as tensors (the caller owns them). */
export function crossAttentionMask(layout: MaskLayout, options: CrossAttentionMaskOptions): CrossAttentionMask {
  const values = crossAttentionLayout(layout, options);
  const { batchSize: B, length: T } = layout;
  return {
    bias: tf.tensor4d(values.bias, [B, 1, T, values.maxItems * values.tokensPerItem]),
    hasMedia: tf.tensor2d(values.hasMedia, [B, T]),
    slots: values.slots,
    selected: values.selected,
    maxItems: values.maxItems,
    tokensPerItem: values.tokensPerItem,
  };
}

/**
 * Arranges the selected items' features ([N, D] per item, or [items, N, D], in `selected` order) into the
 * keys [B, M*N, D] that `bias` refers to; empty slots are zeros. Gradients flow back to the features.
 */
export function gatherMediaSlots(features: ItemFeatures, mask: CrossAttentionLayout | CrossAttentionMask): tf.Tensor3D {
  const { slots, selected, maxItems: M, tokensPerItem: N } = mask;
  const B = slots.length;
  return tf.tidy(() => {
    const list = Array.isArray(features) ? features : tf.unstack(features);
    if (list.length !== selected.length || list.length === 0) {
      throw new Error(
        `gatherMediaSlots: expected features for ${selected.length} item(s) (mask.selected, in batch order), got ${list.length}`,
      );
    }
    const D = list[0]!.shape[1]!;
    list.forEach((f, i) => {
      if (f.rank !== 2 || f.shape[0] !== N || f.shape[1] !== D) {
        throw new Error(
          `gatherMediaSlots: item ${i} has features of shape [${f.shape}], expected [${N}, ${D}] ` +
            '(tokensPerItem rows of item 0\'s width); resample every item to tokensPerItem',
        );
      }
    });
    const table = tf.concat([...list, tf.zeros([1, D])], 0); // [items*N + 1, D]
    const zeroRow = selected.length * N;
    const indexOf = new Map(selected.map((item, i) => [item, i]));
    const index = new Int32Array(B * M * N).fill(zeroRow);
    slots.forEach((row, b) =>
      row.forEach((item, j) => {
        if (!item) return;
        const i = indexOf.get(item)!;
        for (let n = 0; n < N; n++) index[(b * M + j) * N + n] = i * N + n;
      }),
    );
    return tf.reshape(tf.gather(table, tf.tensor1d(index, 'int32')), [B, M * N, D]) as tf.Tensor3D;
  });
}
