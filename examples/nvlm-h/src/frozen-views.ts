/**
 * The frozen ViT's output, computed once per image. NVLM keeps its vision encoder (InternViT-6B) frozen in every
 * stage, so an image's tile and thumbnail features never change: encoding the training pool once instead of 15-17
 * views on every step is what makes both arms fit the time budget (as audio-flamingo's frozen-features.ts does for
 * audio). Only the features are kept (about 60 KB an image, against 180 KB of tile pixels).
 *
 * An item is an `ImageFeatures`: every view's tokens, in the 'tiles' mode's order (tiles row-major, then the
 * thumbnail). Two plugins read it, both named 'image' and holding the model's own ViT (so summaries, freezing and
 * checkpoints see `image.encoder.*` as in any composed model):
 *   - `tilesFeaturePlugin`: every view, as the 'tiles' mode would encode them (the hybrid arm: nvlmHybrid splits
 *     the thumbnail from the tiles);
 *   - `thumbnailFeaturePlugin`: the thumbnail's tokens only (the thumbnail-only arm: early fusion).
 * Each refuses to run while its ViT has trainable parameters, or when the item was encoded by a ViT with other
 * weights (a fingerprint of the weights is kept with every item).
 */
import * as tf from '@tensorflow/tfjs';
import { ModalityModule, type EncodedFeatures, type MediaGrid, type Modality } from '@chimera/core';
import type { RgbImage, TileGrid, VisionModality, VisionTransformer } from '@chimera/vision-encoder';

/** One image's frozen features (see the file comment). */
export interface ImageFeatures {
  /** Encoder inputs: tiles plus the thumbnail. */
  readonly views: number;
  /** Index of the thumbnail among the views. */
  readonly thumbnailIndex: number;
  /** The tile grid the image was cut into. */
  readonly tileGrid: TileGrid;
  /** Token grid of one view (the tower's patch grid, merged when the plugin merges). */
  readonly grid: { rows: number; cols: number };
  readonly tokensPerView: number;
  readonly featureDim: number;
  /** [views * tokensPerView, featureDim], row-major, views in order. */
  readonly features: Float32Array;
  /** Fingerprint of the ViT weights that computed the features. */
  readonly tower: number;
}

/** A number that changes when any ViT weight does (a position-weighted sum of every parameter). */
export function towerFingerprint(encoder: VisionTransformer): number {
  let sum = 0;
  for (const [, p] of encoder.namedParameters()) {
    const values = p.dataSync();
    for (let i = 0; i < values.length; i++) sum += values[i]! * ((i % 7) + 1);
  }
  return sum;
}

/** Options of {@link encodeImages}. */
export interface EncodeImagesOptions {
  /** Average each k x k window of a view's tokens into one (1: keep every token; default 1). */
  pool?: number;
  /** Images per encoder call (default 32). */
  batchSize?: number;
}

/**
 * Encodes images with a 'tiles' mode plugin; the plugin's ViT must be the pretrained one (it is not changed).
 * With `pool` k, each view's token grid is averaged over k x k windows: k*k times fewer cross-attention keys of
 * the same width (pixel shuffle, the plugin's merge, keeps every value but widens the keys k*k times, and the
 * blocks' key/value projections cost as much as before).
 */
export function encodeImages(tiles: VisionModality, images: readonly RgbImage[], options: EncodeImagesOptions = {}): ImageFeatures[] {
  const pool = options.pool ?? 1;
  const batchSize = options.batchSize ?? 32;
  if (tiles.mode !== 'tiles' || !tiles.encoder) throw new Error(`encodeImages: expected a vision plugin in 'tiles' mode, got mode '${tiles.mode}'`);
  const encoder = tiles.encoder;
  const tower = towerFingerprint(encoder);
  const out: ImageFeatures[] = [];
  for (let start = 0; start < images.length; start += batchSize) {
    const prepared = images.slice(start, start + batchSize).map((image) => tiles.prepare(image));
    for (const item of prepared) {
      if (item.thumbnailIndex === undefined || item.thumbnailIndex < 0 || !item.tileGrid) {
        throw new Error("encodeImages: an image was prepared without a thumbnail; build the plugin with thumbnail: 'last' and thumbnailWithSingleTile: true");
      }
    }
    const encoded = tiles.continuousIn!.encode(prepared);
    const features = encoded.features as tf.Tensor2D[];
    prepared.forEach((item, k) => {
      const { rows, cols } = tiles.gridFor!(item)!; // one view's token grid (after any merge)
      if (rows % pool !== 0 || cols % pool !== 0) throw new Error(`encodeImages: a ${rows}x${cols} token grid cannot be pooled in ${pool}x${pool} windows; pick a pool that divides it`);
      const D = tiles.featureDim;
      const pooled = tf.tidy(() =>
        pool === 1 ? features[k]! : tf.mean(tf.reshape(features[k]!, [item.views, rows / pool, pool, cols / pool, pool, D]), [2, 4]),
      );
      const values = new Float32Array(pooled.dataSync());
      if (pooled !== features[k]) pooled.dispose();
      out.push({
        views: item.views,
        thumbnailIndex: item.thumbnailIndex!,
        tileGrid: item.tileGrid!,
        grid: { rows: rows / pool, cols: cols / pool },
        tokensPerView: (rows / pool) * (cols / pool),
        featureDim: D,
        features: values,
        tower,
      });
    });
    tf.dispose(features);
  }
  return out;
}

/** Which views a feature plugin hands on. */
export type FeatureView = 'tiles' | 'thumbnail';

/** The image plugin of one arm over precomputed features, holding `encoder` (frozen) as `image.encoder`. */
export type FeaturePlugin = Modality<ImageFeatures, ImageFeatures> & { readonly encoder: VisionTransformer; readonly view: FeatureView };

function featurePlugin(encoder: VisionTransformer, featureDim: number, view: FeatureView): FeaturePlugin {
  const module = new ModalityModule({ encoder });
  const what = `${view} feature plugin`;
  let fingerprint: { value: number; at: number } | null = null;
  const check = (item: ImageFeatures): ImageFeatures => {
    if (!item || !(item.features instanceof Float32Array) || typeof item.views !== 'number') {
      throw new Error(`${what}: expected ImageFeatures from encodeImages(), got ${item === null ? 'null' : typeof item}; encode the images first`);
    }
    if (item.featureDim !== featureDim || item.features.length !== item.views * item.tokensPerView * featureDim) {
      throw new Error(`${what}: the item holds ${item.features.length} values of width ${item.featureDim}, expected ${item.views} views x ${item.tokensPerView} tokens x ${featureDim}`);
    }
    return item;
  };
  const tokensFor = (item: ImageFeatures) => (view === 'tiles' ? check(item).views * item.tokensPerView : check(item).tokensPerView);
  const gridFor = (item: ImageFeatures): MediaGrid =>
    view === 'tiles' ? { frames: check(item).views, ...item.grid } : { ...check(item).grid };
  const encode = (items: ImageFeatures[]): EncodedFeatures => {
    const trainable = module.trainableVariables().length;
    if (trainable > 0) {
      throw new Error(`${what}: ${trainable} ViT parameters are trainable, so the remembered features would be stale; freeze image.encoder (NVLM keeps it frozen)`);
    }
    // The weights only change through training or loading; re-read them at most once a second.
    if (!fingerprint || performance.now() - fingerprint.at > 1000) fingerprint = { value: towerFingerprint(encoder), at: performance.now() };
    for (const item of items) {
      check(item);
      if (item.tower !== fingerprint.value) {
        throw new Error(`${what}: an item was encoded by a ViT with other weights than this model's; encode the images with this model's pretrained ViT`);
      }
    }
    const features = items.map((item) => {
      const rows = item.tokensPerView;
      if (view === 'tiles') return tf.tensor2d(item.features, [item.views * rows, featureDim]);
      const start = item.thumbnailIndex * rows * featureDim;
      return tf.tensor2d(item.features.subarray(start, start + rows * featureDim), [rows, featureDim]);
    });
    return { features, tokensPerItem: items.map(tokensFor), grids: items.map(gridFor) };
  };
  return {
    name: 'image',
    view,
    encoder,
    module,
    prepare: (raw: ImageFeatures) => check(raw),
    tokensFor,
    gridFor,
    continuousIn: { featureDim, encode },
  };
}

/** Every view of an item (tiles and thumbnail), for nvlmHybrid. */
export function tilesFeaturePlugin(encoder: VisionTransformer, featureDim: number): FeaturePlugin {
  return featurePlugin(encoder, featureDim, 'tiles');
}

/** The thumbnail's tokens only, for thumbnail-only early fusion. */
export function thumbnailFeaturePlugin(encoder: VisionTransformer, featureDim: number): FeaturePlugin {
  return featurePlugin(encoder, featureDim, 'thumbnail');
}
