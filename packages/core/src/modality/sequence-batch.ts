/**
 * The SequenceBatch: the common currency between fusion strategies and backbones. It owns the tensors made
 * from a layout (ids, embeddings, routing, positions, attention bias, media locations, per-head targets) and
 * frees them in `dispose()`; the plain-JS layout stays available for builders such as cross-attention masks.
 */
import * as tf from '@tensorflow/tfjs';
import { attentionBiasValues } from './attention-bias';
import { crossAttentionMask, type CrossAttentionMask, type CrossAttentionMaskOptions } from './cross-attention-mask';
import type { PlacedMedia, SequenceLayout } from './layout';

/** Targets of one autoregressive head (tensors owned by the batch). */
export interface HeadTargets {
  /** int32 [B, T]: the class position t predicts (0 where masked). */
  ids: tf.Tensor2D;
  /** float32 [B, T]: 1 where the loss counts. */
  mask: tf.Tensor2D;
}

/** Targets of the diffusion latents of one modality (tensors owned by the batch). */
export interface LatentTargets {
  /** float32 [B, T]: 1 on trained latent positions (no shift). */
  mask: tf.Tensor2D;
  /** int32 [K]: flat b*T+t of each latent row, in the order of the concatenated latents. */
  index: tf.Tensor1D;
  /** float32 [K]: 1 when the row's item is trained. */
  trained: tf.Tensor1D;
}

/** Every head's targets (tensors owned by the batch). */
export interface SequenceTargets {
  /** Next text token (text, and codes of modalities in the text vocabulary). */
  text: HeadTargets;
  /** Per modality with its own code head (Janus); empty when codes share the text vocabulary. */
  codes: Record<string, HeadTargets>;
  /** Per modality with diffusion latents in the sequence (Transfusion). */
  latents: Record<string, LatentTargets>;
}

/**
 * A packed batch as tensors: ids, spliced embeddings, routing, positions, attention bias, padding mask, media
 * locations and targets, made from a {@link SequenceLayout}. It owns every tensor: call `dispose()` when done.
 */
export class SequenceBatch {
  /** The plain-JS layout the tensors were made from. */
  readonly layout: SequenceLayout;
  /** int32 [B, T]: text ids; media positions hold their placeholder id, padding the pad id. */
  readonly inputIds: tf.Tensor2D;
  /** float32 [B, T, D] when spliced, else null. */
  readonly inputsEmbeds: tf.Tensor3D | null;
  /** int32 [B, T]: 0 text (and padding, markers), k the k-th of `modalityNames`. */
  readonly tokenModality: tf.Tensor2D;
  /** int32 [B, T], or [3, B, T] for M-RoPE. */
  readonly positions: tf.Tensor2D | tf.Tensor3D;
  /** float32 [B, 1, T, T] additive: 0 or MASKED_BIAS (-1e9). */
  readonly attentionBias: tf.Tensor4D;
  /** float32 [B, T]: 1 real token, 0 padding. */
  readonly paddingMask: tf.Tensor2D;
  /** int32 [B, T]: how many of the row's media items start at or before each position. */
  readonly mediaLocations: tf.Tensor2D;
  /** Per-head targets and loss masks. */
  readonly targets: SequenceTargets;
  private disposed = false;

  /** Makes the tensors of `layout`; takes ownership of `inputsEmbeds`. */
  constructor(layout: SequenceLayout, inputsEmbeds: tf.Tensor3D | null = null) {
    const { batchSize: B, length: T } = layout;
    this.layout = layout;
    this.inputsEmbeds = inputsEmbeds;
    this.inputIds = tf.tensor2d(layout.inputIds, [B, T], 'int32');
    this.tokenModality = tf.tensor2d(layout.tokenModality, [B, T], 'int32');
    this.positions =
      layout.positionRank === 3
        ? tf.tensor3d(layout.positions, [3, B, T], 'int32')
        : tf.tensor2d(layout.positions, [B, T], 'int32');
    this.attentionBias = tf.tensor4d(attentionBiasValues(layout), [B, 1, T, T]);
    this.paddingMask = tf.tensor2d(Float32Array.from(layout.paddingMask), [B, T]);
    this.mediaLocations = tf.tensor2d(layout.mediaLocations, [B, T], 'int32');
    const head = (ids: Int32Array, mask: Float32Array): HeadTargets => ({
      ids: tf.tensor2d(ids, [B, T], 'int32'),
      mask: tf.tensor2d(mask, [B, T]),
    });
    const t = layout.targets;
    this.targets = {
      text: head(t.text.ids, t.text.mask),
      codes: Object.fromEntries(Object.entries(t.codes).map(([m, c]) => [m, head(c.ids, c.mask)])),
      latents: Object.fromEntries(
        Object.entries(t.latents).map(([m, l]) => [
          m,
          {
            mask: tf.tensor2d(l.mask, [B, T]),
            index: tf.tensor1d(l.index, 'int32'),
            trained: tf.tensor1d(l.trained),
          },
        ]),
      ),
    };
  }

  /** Rows B. */
  get batchSize(): number {
    return this.layout.batchSize;
  }

  /** Padded length T. */
  get length(): number {
    return this.layout.length;
  }

  /** Modality names in routing order: tokenModality k is modalityNames[k - 1]. */
  get modalityNames(): readonly string[] {
    return this.layout.modalityNames;
  }

  /** Every media item, in batch order. */
  get media(): readonly PlacedMedia[] {
    return this.layout.media;
  }

  /** Per row, the position id of the next appended token (generation after this prompt). */
  get nextPositions(): readonly number[] {
    return this.layout.nextPositions;
  }

  /** A Flamingo-style cross-attention mask for this batch (the caller owns its tensors). */
  crossAttentionMask(options: CrossAttentionMaskOptions): CrossAttentionMask {
    return crossAttentionMask(this.layout, options);
  }

  /** Every tensor the batch owns. */
  tensors(): tf.Tensor[] {
    const t = this.targets;
    return [
      this.inputIds,
      ...(this.inputsEmbeds ? [this.inputsEmbeds] : []),
      this.tokenModality,
      this.positions,
      this.attentionBias,
      this.paddingMask,
      this.mediaLocations,
      t.text.ids,
      t.text.mask,
      ...Object.values(t.codes).flatMap((c) => [c.ids, c.mask]),
      ...Object.values(t.latents).flatMap((l) => [l.mask, l.index, l.trained]),
    ];
  }

  /** True after `dispose()`. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees every tensor the batch owns (embeddings included); safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.tensors());
  }
}
