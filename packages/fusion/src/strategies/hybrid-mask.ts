/**
 * The cross-attention mask of NVLM-H's tile path (Dai et al. 2024, "NVLM: Open Frontier-Class Multimodal LLMs"):
 * every high-resolution tile is its own `cross` item (N keys), optionally behind a 1-D text tile tag `<tile_i>`.
 *
 * - a tile tag's position attends only to its own tile: this is how the tag "tags" the tile's tokens, since the
 *   tiles never enter the sequence. The tag's hidden state carries what tile i holds, and later text reads it
 *   through self-attention at a known place (after `<tile_i>`), which is where the tile's spatial order lives;
 * - every other position attends to all tiles of the latest image that started at or before it ('latest'), or to
 *   the tiles of every such image ('all'). Positions before any tile see nothing (hasMedia 0, the gate's input is
 *   zeroed there), as in Flamingo.
 *
 * Slots and key order come from core's crossAttentionLayout (so gatherMediaSlots lays the keys out to match);
 * only the per-position visibility differs from its 'latest' / 'all' rules.
 */
import * as tf from '@tensorflow/tfjs';
import { MASKED_BIAS, crossAttentionLayout, type CrossAttentionMask, type PlacedMedia, type SequenceLayout } from '@chimera/core';

/** Which image (its index in the batch) a placed tile belongs to. */
export type TileOwner = (tile: PlacedMedia) => number;

/** Options of {@link tileCrossAttentionMask}. */
export interface TileMaskOptions {
  /** The modality whose `cross` items are the tiles. */
  modality: string;
  /** Keys per tile (N). */
  tokensPerItem: number;
  /** What a position that is not a tile tag sees: the latest image's tiles (default) or every preceding image's. */
  mode: 'latest' | 'all';
  /** The image each tile belongs to. */
  imageOf: TileOwner;
}

/** The mask of the tile path as tensors (the caller owns `bias` and `hasMedia`); see the file comment. */
export function tileCrossAttentionMask(
  layout: Pick<SequenceLayout, 'batchSize' | 'length' | 'media' | 'paddingMask'>,
  options: TileMaskOptions,
): CrossAttentionMask {
  const { tokensPerItem: N, mode, imageOf } = options;
  const slotsLayout = crossAttentionLayout(layout, { tokensPerItem: N, modality: options.modality, kinds: ['cross'], mode: 'all' });
  const { batchSize: B, length: T } = layout;
  const M = slotsLayout.maxItems;
  const K = M * N;
  const bias = new Float32Array(B * T * K).fill(MASKED_BIAS);
  const hasMedia = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const tiles = slotsLayout.slots[b]!.filter((tile): tile is PlacedMedia => tile !== null); // slots 0..n-1, in start order
    const tagAt = new Map<number, number>();
    tiles.forEach((tile, slot) => {
      if (tile.length > 0) tagAt.set(tile.start, slot);
    });
    for (let t = 0; t < T; t++) {
      if (!layout.paddingMask[b * T + t]) continue;
      const rowBase = (b * T + t) * K;
      const tagged = tagAt.get(t);
      if (tagged !== undefined) {
        bias.fill(0, rowBase + tagged * N, rowBase + (tagged + 1) * N);
        hasMedia[b * T + t] = 1;
        continue;
      }
      let started = 0;
      while (started < tiles.length && tiles[started]!.start <= t) started++;
      if (started === 0) continue;
      const latest = imageOf(tiles[started - 1]!);
      for (let slot = 0; slot < started; slot++) {
        if (mode === 'latest' && imageOf(tiles[slot]!) !== latest) continue;
        bias.fill(0, rowBase + slot * N, rowBase + (slot + 1) * N);
      }
      hasMedia[b * T + t] = 1;
    }
  }
  return {
    bias: tf.tensor4d(bias, [B, 1, T, K]),
    hasMedia: tf.tensor2d(hasMedia, [B, T]),
    slots: slotsLayout.slots,
    selected: slotsLayout.selected,
    maxItems: M,
    tokensPerItem: N,
  };
}
