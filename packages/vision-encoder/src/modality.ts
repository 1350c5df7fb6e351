/**
 * The vision modality plugin: a core `Modality` (continuous in) over images, in four modes.
 * - 'vit': a fixed-size ViT (CLIP / SigLIP; LLaVA, Liu et al. 2023): ImageProcessor -> VisionTransformer,
 *   chosen layers (LLaVA's vision_feature_layer, several concatenated), CLS dropped or kept.
 * - 'native': native resolution (Qwen2-VL, Wang et al. 2024): smart resize to multiples of patch * mergeSize,
 *   the ViT at that size (2-D RoPE or interpolated positions), then the mergeSize x mergeSize merge.
 * - 'tiles': dynamic tiling (InternVL 1.5, Chen et al. 2024; NVLM-D, Dai et al. 2024): tiles plus a
 *   thumbnail through the ViT at its own size, optionally merged (pixel shuffle).
 * - 'fuyu': no encoder (Fuyu-8B, Bavishi et al. 2023): raw patches, a Linear, a row break after each row.
 *
 * `prepare` accepts an RgbImage, PNG/JPEG bytes or a file path and returns a PreparedImage: plain JS (no tensors
 * to dispose) holding the normalized pixels of every view and their geometry. `tokensFor` derives the count
 * from that geometry alone with the same rules `encode` runs, so placeholder expansion and features agree by
 * construction; `gridFor` gives the grid core's packer turns into M-RoPE positions:
 * - vit / native: the token grid after merging ({rows, cols});
 * - tiles: {frames: views, rows, cols} (each view a frame; no frames when there is one view);
 * - fuyu: {rows, cols + 1} (the row break occupies the column after the row's last patch);
 * - none when the CLS token is kept (it has no cell in the grid).
 *
 * Trainable parts are one ModalityModule with role names: `encoder` (the ViT) or `patch_embed` (Fuyu), so a
 * composite registering the plugin as `image` exposes `image.encoder.*` to freezing. Projectors (the merger's
 * MLP, LLaVA's projector) belong to fusion.
 */
import * as tf from '@tensorflow/tfjs';
import {
  ModalityModule,
  type EncodeOptions,
  type EncodedFeatures,
  type MediaGrid,
  type Modality,
  type ModalityPath,
} from '@chimera/core';
import { cropImage } from './image/crop-pad';
import { ImageInputError } from './image/errors';
import { imageToTensor, resolveNormalization, type Normalization } from './image/normalize';
import { ImageProcessor, clipProcessor, siglipProcessor, type ImageInput } from './image/processor';
import { resizeImage, type ResizeFilter } from './image/resize';
import { fitWithinPixels } from './image/sizing';
import type { RgbColor, RgbImage } from './image/types';
import { mergePatches, mergedGridShape, pixelShuffle, pixelShuffleGridShape, type GridShape, type OddGridPolicy } from './patches/merge';
import { nativeGeometry, QWEN2VL_MAX_PIXELS, QWEN2VL_MIN_PIXELS, type OversizePolicy } from './patches/native-grid';
import { RawPatchEmbedding, rawPatchGrid } from './patches/raw-patches';
import { cutTiles, planTiling, type ThumbnailPlacement, type TileGrid } from './patches/tiling';
import type { AlphaBackground } from './image/pixels';
import { VisionTransformer, type FeatureLayer, type FeatureSelect } from './vit/tower';

/**
 * How the plugin turns an image into tokens: a fixed-size ViT ('vit'), native resolution ('native', Qwen2-VL),
 * dynamic tiles ('tiles', InternVL / NVLM) or raw patches without an encoder ('fuyu').
 */
export type VisionMode = 'vit' | 'native' | 'tiles' | 'fuyu';

/** How a tower's patch features are merged to cut tokens. */
export interface MergeSpec {
  /** 'concat' (Qwen2-VL's merger input, default) or 'pixel-shuffle' (InternVL / NVLM). */
  method?: 'concat' | 'pixel-shuffle';
  /** Window side k: k x k patches -> one token of k*k*D (default 2; pixel shuffle scale 1/k). */
  factor?: number;
  /** Pixel shuffle only: InternVL's ps_version (default 'v2'; 'v1' transposes the grid). */
  version?: 'v1' | 'v2';
  /** Patch grids not divisible by k: 'error' (default) or zero-pad at the bottom/right. */
  oddGrid?: OddGridPolicy;
}

/** false / omitted: no merge; a number: concat merge with that factor; or a full spec. */
export type MergeSetting = false | number | MergeSpec;

/** Decoding and the cap on the input image (bytes, paths and RgbImages alike). */
export interface InputOptions {
  /** Largest input width * height (default DEFAULT_MAX_PIXELS, 50 MP). */
  maxPixels?: number;
  /** Over it: 'error' (default) or shrink to fit before anything else. */
  onOversize?: OversizePolicy;
  /** Colour transparent pixels are composited on when decoding (default white). */
  background?: AlphaBackground;
  /** Memory budget of one decode in bytes (default 256 MiB; see DecodeOptions.maxDecodeBytes). */
  maxDecodeBytes?: number;
}

interface BaseOptions {
  /** Modality name and parameter prefix (default 'image'). */
  name?: string;
  /** Decoding limits and the pixel cap on the input image. */
  input?: InputOptions;
}

interface TowerOptions extends BaseOptions {
  /** The ViT (registered as the modality's `encoder`). */
  encoder: VisionTransformer;
  /** Token merge: omitted/false none, true a 2x2 concat, k a k x k concat, or a spec ('native': see there). */
  merge?: MergeSetting | boolean;
  /** hidden_states indices (negative from the end) or 'final'; several are concatenated along features. */
  layers?: FeatureLayer | readonly FeatureLayer[];
  /** 'default' drops the CLS token (default), 'full' keeps it (no merge, no grid then). */
  select?: FeatureSelect;
  /** Pixel statistics (default by the tower's family: 'siglip' for SigLIP, else 'clip'). */
  normalization?: Normalization;
  /** Resampling filter for resizes this plugin does (default 'bicubic'). */
  filter?: ResizeFilter;
}

/** Options of {@link visionModality} for a fixed-size ViT (LLaVA). */
export interface ViTModeOptions extends TowerOptions {
  /** Selects this mode. */
  mode: 'vit';
  /**
   * The fixed-size pipeline (default: clipProcessor or siglipProcessor at the tower's imageSize, with `input`'s
   * cap). Its output size must be a patch grid of the tower. `normalization` and `filter` do not apply.
   */
  processor?: ImageProcessor;
  /** Default -2 (LLaVA's penultimate layer). */
  layers?: FeatureLayer | readonly FeatureLayer[];
}

/** Options of {@link visionModality} for native resolution (Qwen2-VL). */
export interface NativeModeOptions extends TowerOptions {
  /** Selects this mode. */
  mode: 'native';
  /**
   * Patches merged per side (default 2); sizes are multiples of patchSize * mergeSize. Both sides of an input
   * image must be at least the tower's patchSize: prepare refuses smaller ones.
   */
  mergeSize?: number;
  /** Processed pixel bounds (defaults: Qwen2-VL's 56*56, lowered to maxPixels if that is smaller, and 14*14*4*1280). */
  minPixels?: number;
  /** Upper bound on the processed pixel count. */
  maxPixels?: number;
  /** Over maxPixels: 'resize' (default, Qwen2-VL) or 'error'. */
  onOversize?: OversizePolicy;
  /** Default true: the mergeSize x mergeSize concat merge; or a spec with method 'pixel-shuffle'; false: none. */
  merge?: boolean | MergeSpec;
  /** Default -1 (the last layer, as Qwen2-VL). */
  layers?: FeatureLayer | readonly FeatureLayer[];
}

/** Options of {@link visionModality} for dynamic tiling (InternVL 1.5, NVLM-D). */
export interface TilesModeOptions extends TowerOptions {
  /** Selects this mode. */
  mode: 'tiles';
  /** Tile side (default the tower's imageSize). */
  tileSize?: number;
  /** Most tiles, thumbnail not counted (default 6). */
  maxTiles?: number;
  /** Fewest tiles (default 1). */
  minTiles?: number;
  /** Global view placement (default 'last', InternVL / NVLM). */
  thumbnail?: ThumbnailPlacement;
  /** Add the thumbnail even when the grid is one tile (default false, as InternVL). */
  thumbnailWithSingleTile?: boolean;
  /** Default -1 (InternVL's select_layer). */
  layers?: FeatureLayer | readonly FeatureLayer[];
}

/** Options of {@link visionModality} for Fuyu's encoder-free raw patches. */
export interface FuyuModeOptions extends BaseOptions {
  /** Selects this mode. */
  mode: 'fuyu';
  /** An existing embedding (shares its patch size and width); otherwise one is made from patchSize and dim. */
  embedding?: RawPatchEmbedding;
  /** Patch side (default 30, Fuyu-8B). Both sides of an image must be at least this long: prepare refuses smaller ones. */
  patchSize?: number;
  /** Model width D (required without `embedding`). */
  dim?: number;
  /** Row-break embedding after every row (default true). */
  rowBreaks?: boolean;
  /** Pixel statistics (default 'siglip': mean = std = 0.5, as Fuyu). */
  normalization?: Normalization;
  /** Cap on the image before padding (default 1920*1080, Fuyu's canvas). */
  maxPixels?: number;
  /** Over it: 'resize' (default; Fuyu downscales large images) or 'error'. */
  onOversize?: OversizePolicy;
  /** Colour of the bottom/right padding (default [1, 1, 1]: Fuyu's processor pads with the byte value 1). */
  padColor?: RgbColor;
  /** Resampling filter for the downscale of large images (default 'bicubic'). */
  filter?: ResizeFilter;
}

/** Options of {@link visionModality}, one interface per {@link VisionMode}. */
export type VisionModalityOptions = ViTModeOptions | NativeModeOptions | TilesModeOptions | FuyuModeOptions;

/** What `prepare` returns: normalized pixels of every view plus the geometry `tokensFor` needs. */
export interface PreparedImage {
  /** The mode it was prepared for. */
  readonly mode: VisionMode;
  /** Float32 [views, height, width, 3], NHWC, normalized. */
  readonly pixels: Float32Array;
  /** Encoder inputs: 1, or tiles (+ thumbnail) in 'tiles' mode. */
  readonly views: number;
  /** Size of each view in pixels (Fuyu: padded to a multiple of the patch). */
  readonly height: number;
  /** Width of each view in pixels. */
  readonly width: number;
  /** The input image's size (after the input cap). */
  readonly sourceWidth: number;
  /** Height of the input image (after the input cap). */
  readonly sourceHeight: number;
  /** 'tiles' mode: the tile grid and where the thumbnail is among the views (-1: none). */
  readonly tileGrid?: TileGrid;
  /** Index of the thumbnail among the views, or -1 without one. */
  readonly thumbnailIndex?: number;
}

/**
 * The image modality plugin that {@link visionModality} builds: a Modality with the continuous-in path, plus its
 * mode, encoder and feature layout.
 */
export type VisionModality = Modality<ImageInput, PreparedImage> & {
  /** The mode it runs in. */
  readonly mode: VisionMode;
  /** The trainable parts by role (`encoder` or `patch_embed`). */
  readonly module: ModalityModule;
  /** The ViT (tower modes) or null. */
  readonly encoder: VisionTransformer | null;
  /** The hidden_states taps whose features are concatenated (tower modes; LLaVA's vision_feature_layer), or null. */
  readonly layers: readonly FeatureLayer[] | null;
  /** Whether the CLS token is dropped ('default') or kept ('full') (tower modes), or null. */
  readonly select: FeatureSelect | null;
  /** The raw-patch embedding ('fuyu') or null. */
  readonly patchEmbedding: RawPatchEmbedding | null;
  /** Feature width of `encode`'s output. */
  readonly featureDim: number;
  /** Like `prepare`, for a list. */
  prepareAll(raws: readonly ImageInput[]): PreparedImage[];
};

/** Fuyu-8B's patch side and canvas. */
export const FUYU_PATCH_SIZE = 30;
/** Fuyu's default cap on the input image: a 1920x1080 canvas. */
export const FUYU_MAX_PIXELS = 1920 * 1080;

interface ResolvedMerge {
  method: 'concat' | 'pixel-shuffle';
  factor: number;
  version: 'v1' | 'v2';
  oddGrid: OddGridPolicy;
}

function resolveMerge(setting: MergeSetting | undefined, what: string): ResolvedMerge | null {
  if (setting === undefined || setting === false) return null;
  const spec: MergeSpec = typeof setting === 'number' ? { factor: setting } : setting;
  const method = spec.method ?? 'concat';
  if (method !== 'concat' && method !== 'pixel-shuffle') {
    throw new Error(`${what}: merge.method must be 'concat' or 'pixel-shuffle', got ${JSON.stringify(method)}`);
  }
  const factor = spec.factor ?? 2;
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`${what}: merge factor must be an integer >= 1, got ${factor}`);
  return { method, factor, version: spec.version ?? 'v2', oddGrid: spec.oddGrid ?? 'error' };
}

function mergeGrid(grid: GridShape, merge: ResolvedMerge | null): GridShape {
  if (!merge) return grid;
  return merge.method === 'concat'
    ? mergedGridShape(grid, { factor: merge.factor, oddGrid: merge.oddGrid })
    : pixelShuffleGridShape(grid, { scale: 1 / merge.factor, version: merge.version, oddGrid: merge.oddGrid });
}

function applyMerge(x: tf.Tensor4D, merge: ResolvedMerge): tf.Tensor4D {
  return merge.method === 'concat'
    ? mergePatches(x, { factor: merge.factor, oddGrid: merge.oddGrid })
    : pixelShuffle(x, { scale: 1 / merge.factor, version: merge.version, oddGrid: merge.oddGrid });
}

/** Normalized float32 values of an image (copied out of a short-lived tensor). */
function normalizedValues(image: RgbImage, normalization: Normalization): Float32Array {
  const tensor = imageToTensor(image, normalization);
  try {
    return new Float32Array(tensor.dataSync());
  } finally {
    tensor.dispose();
  }
}

function capImage(image: RgbImage, maxPixels: number, onOversize: OversizePolicy, filter: ResizeFilter, what: string): RgbImage {
  const pixels = image.width * image.height;
  if (pixels <= maxPixels) return image;
  if (onOversize !== 'resize') {
    throw new ImageInputError(
      'too-large',
      `${what}: the image is ${image.width}x${image.height} = ${pixels} pixels, over maxPixels ${maxPixels}; ` +
        "downscale it, raise maxPixels, or pass onOversize: 'resize' to shrink it to fit",
    );
  }
  const size = fitWithinPixels(image.width, image.height, maxPixels);
  return resizeImage(image, size.width, size.height, filter);
}

/** Builds the image modality plugin for one of the four modes (see the file comment). */
export function visionModality(options: VisionModalityOptions): VisionModality {
  const name = options.name ?? 'image';
  const what = `visionModality('${name}', mode '${options.mode}')`;
  switch (options.mode) {
    case 'fuyu':
      return fuyuModality(options, name, what);
    case 'vit':
    case 'native':
    case 'tiles':
      return towerModality(options, name, what);
    default:
      throw new Error(
        `visionModality: unknown mode ${JSON.stringify((options as { mode: unknown }).mode)}; ` +
          `use 'vit', 'native', 'tiles' or 'fuyu'`,
      );
  }
}

function inputLoader(options: BaseOptions, preset: Normalization): ImageProcessor {
  return new ImageProcessor({
    preset,
    maxPixels: options.input?.maxPixels,
    onOversize: options.input?.onOversize,
    background: options.input?.background,
    maxDecodeBytes: options.input?.maxDecodeBytes,
  });
}

function checkItem(item: PreparedImage, mode: VisionMode, what: string): void {
  if (!item || !(item.pixels instanceof Float32Array)) {
    throw new Error(`${what}: expected a PreparedImage from this plugin's prepare(), got ${typeof item}`);
  }
  if (item.mode !== mode) {
    throw new Error(`${what}: the image was prepared for mode '${item.mode}' but this plugin is mode '${mode}'; prepare it with this plugin`);
  }
  if (item.pixels.length !== item.views * item.height * item.width * 3) {
    throw new Error(
      `${what}: a PreparedImage of ${item.views} view(s) of ${item.width}x${item.height} needs ` +
        `${item.views * item.height * item.width * 3} values, got ${item.pixels.length}`,
    );
  }
}

function checkPath(path: ModalityPath | undefined, name: string): void {
  if (path !== undefined && path !== 'continuousIn') {
    throw new Error(`modality '${name}' only has the continuousIn path (encode); got path '${path}'`);
  }
}

function towerModality(options: ViTModeOptions | NativeModeOptions | TilesModeOptions, name: string, what: string): VisionModality {
  const encoder = options.encoder;
  if (!(encoder instanceof VisionTransformer)) {
    throw new Error(`${what}: 'encoder' must be a VisionTransformer, e.g. new VisionTransformer(tinyViT())`);
  }
  const mode = options.mode;
  const config = encoder.config;
  const select: FeatureSelect = options.select ?? 'default';
  if (select !== 'default' && select !== 'full') {
    throw new Error(`${what}: select must be 'default' (drop CLS) or 'full' (keep CLS), got ${JSON.stringify(select)}`);
  }
  const layerList = (l: FeatureLayer | readonly FeatureLayer[]) => (Array.isArray(l) ? [...(l as FeatureLayer[])] : [l as FeatureLayer]);
  const layers = layerList(options.layers ?? (mode === 'vit' ? -2 : -1));
  if (layers.length === 0) throw new Error(`${what}: layers must name at least one layer (e.g. -2)`);
  layers.forEach((layer) => encoder.resolveLayer(layer));
  const normalization: Normalization = options.normalization ?? (config.family === 'siglip' ? 'siglip' : 'clip');
  resolveNormalization(normalization);
  const filter = options.filter ?? 'bicubic';

  const mergeSize = mode === 'native' ? ((options as NativeModeOptions).mergeSize ?? 2) : 1;
  let merge: ResolvedMerge | null;
  if (mode === 'native') {
    const setting = (options as NativeModeOptions).merge ?? true;
    merge = setting === false ? null : resolveMerge(setting === true ? { factor: mergeSize } : { factor: mergeSize, ...setting }, what);
    if (merge && merge.factor !== mergeSize) {
      throw new Error(`${what}: native mode merges mergeSize x mergeSize patches; set mergeSize (${mergeSize}) instead of merge.factor (${merge.factor})`);
    }
  } else {
    const setting = options.merge;
    merge = resolveMerge(setting === true ? 2 : setting, what);
  }
  const keepsCls = config.clsToken && select === 'full';
  if (keepsCls && merge) {
    throw new Error(`${what}: merging needs patch tokens only; use select 'default' (drop CLS) or no merge`);
  }

  const loader = inputLoader(options, normalization);
  const processor =
    mode === 'vit'
      ? ((options as ViTModeOptions).processor ??
        (config.family === 'siglip' ? siglipProcessor : clipProcessor)({
          size: config.imageSize,
          maxPixels: options.input?.maxPixels,
          onOversize: options.input?.onOversize,
          background: options.input?.background,
          maxDecodeBytes: options.input?.maxDecodeBytes,
        }))
      : null;
  const tiles = mode === 'tiles' ? (options as TilesModeOptions) : null;
  const tileSize = tiles ? (tiles.tileSize ?? config.imageSize) : 0;
  if (tiles) encoder.patchGrid(tileSize, tileSize);
  const native = mode === 'native' ? (options as NativeModeOptions) : null;

  /** Tokens and token grid of one view of this size: the tower's patch grid, merged, plus CLS when kept. */
  const viewGeometry = (height: number, width: number): { tokens: number; grid: GridShape } => {
    const grid = mergeGrid(encoder.patchGrid(height, width), merge);
    return { tokens: grid.rows * grid.cols + (keepsCls ? 1 : 0), grid };
  };

  const prepare = (raw: ImageInput): PreparedImage => {
    if (processor) {
      const loaded = processor.load(raw);
      const image = processor.prepare(loaded);
      viewGeometry(image.height, image.width); // refuse sizes the tower cannot take now, not at encode
      const pixels = imageToTensor(image, processor.options.preset, processor.options.rescale);
      const values = new Float32Array(pixels.dataSync());
      pixels.dispose();
      return { mode, pixels: values, views: 1, height: image.height, width: image.width, sourceWidth: loaded.width, sourceHeight: loaded.height };
    }
    const image = loader.prepare(raw);
    const base = { mode, sourceWidth: image.width, sourceHeight: image.height };
    if (native) {
      // Smart resize would upscale a side under one patch into patches of invented pixels: refuse it instead.
      if (image.width < config.patchSize || image.height < config.patchSize) {
        throw new ImageInputError(
          'bad-pixels',
          `${what}: the image is ${image.width}x${image.height} (width x height), smaller than one ${config.patchSize}x${config.patchSize} ` +
            `patch of the tower; native resolution keeps an image's own size, so both sides must be at least ${config.patchSize} ` +
            'pixels: upscale or pad the image first, or use a tower with a smaller patchSize',
        );
      }
      const geometry = nativeGeometry(image.height, image.width, {
        patchSize: config.patchSize,
        mergeSize,
        minPixels: native.minPixels ?? Math.min(QWEN2VL_MIN_PIXELS, native.maxPixels ?? QWEN2VL_MAX_PIXELS),
        maxPixels: native.maxPixels ?? QWEN2VL_MAX_PIXELS,
        onOversize: native.onOversize ?? 'resize',
      });
      const resized = resizeImage(image, geometry.width, geometry.height, filter);
      return { ...base, pixels: normalizedValues(resized, normalization), views: 1, height: geometry.height, width: geometry.width };
    }
    const plan = planTiling(image.width, image.height, {
      tileSize,
      maxTiles: tiles!.maxTiles,
      minTiles: tiles!.minTiles,
      thumbnail: tiles!.thumbnail,
      thumbnailWithSingleTile: tiles!.thumbnailWithSingleTile,
    });
    const viewSize = tileSize * tileSize * 3;
    const pixels = new Float32Array(plan.views * viewSize);
    const resized = resizeImage(image, plan.resizedWidth, plan.resizedHeight, filter);
    const tileValues = tf.tidy(() => cutTiles(imageToTensor(resized, normalization), plan.grid, tileSize));
    const cut = tileValues.dataSync();
    const tileStart = plan.thumbnailIndex === 0 ? 1 : 0;
    pixels.set(cut, tileStart * viewSize);
    tileValues.dispose();
    if (plan.thumbnailIndex >= 0) {
      const thumbnail = resizeImage(image, tileSize, tileSize, filter);
      pixels.set(normalizedValues(thumbnail, normalization), plan.thumbnailIndex * viewSize);
    }
    return { ...base, pixels, views: plan.views, height: tileSize, width: tileSize, tileGrid: plan.grid, thumbnailIndex: plan.thumbnailIndex };
  };

  const tokensFor = (item: PreparedImage, path?: ModalityPath): number => {
    checkPath(path, name);
    checkItem(item, mode, what);
    return item.views * viewGeometry(item.height, item.width).tokens;
  };

  const gridFor = (item: PreparedImage, path?: ModalityPath): MediaGrid | undefined => {
    checkPath(path, name);
    checkItem(item, mode, what);
    if (keepsCls) return undefined;
    const { grid } = viewGeometry(item.height, item.width);
    return item.views > 1 ? { frames: item.views, rows: grid.rows, cols: grid.cols } : { rows: grid.rows, cols: grid.cols };
  };

  /** [views, T, D] tower output -> [views * T', D'] (merged when configured, views concatenated). */
  const postprocess = (x: tf.Tensor3D, patchGrid: GridShape): tf.Tensor2D => {
    const [views, , dim] = x.shape;
    if (!merge) return tf.reshape(x, [-1, dim]) as tf.Tensor2D;
    const grid = tf.reshape(x, [views, patchGrid.rows, patchGrid.cols, dim]) as tf.Tensor4D;
    const merged = applyMerge(grid, merge);
    return tf.reshape(merged, [-1, merged.shape[3]]) as tf.Tensor2D;
  };

  const encode = (items: PreparedImage[], encodeOptions: EncodeOptions = {}): EncodedFeatures => {
    if (!Array.isArray(items) || items.length === 0) throw new Error(`${what}: encode needs a non-empty list of PreparedImages`);
    items.forEach((item) => checkItem(item, mode, what));
    const tapLayers = encodeOptions.taps ?? [];
    tapLayers.forEach((layer) => encoder.resolveLayer(layer));
    // Items whose views share a size run as one batch; results go back in item order.
    const groups = new Map<string, number[]>();
    items.forEach((item, i) => {
      const key = `${item.height}x${item.width}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    const out = tf.tidy(() => {
      const features: tf.Tensor2D[] = new Array(items.length);
      const taps: tf.Tensor2D[][] = tapLayers.map(() => new Array(items.length));
      for (const indices of groups.values()) {
        const first = items[indices[0]!]!;
        const { height, width } = first;
        const views = indices.reduce((sum, i) => sum + items[i]!.views, 0);
        const values = new Float32Array(views * height * width * 3);
        let offset = 0;
        for (const i of indices) {
          values.set(items[i]!.pixels, offset);
          offset += items[i]!.pixels.length;
        }
        const pixels = tf.tensor4d(values, [views, height, width, 3]);
        const patchGrid = encoder.patchGrid(height, width);
        let main: tf.Tensor3D;
        let tapped: tf.Tensor3D[] = [];
        if (tapLayers.length === 0) {
          main = encoder.features(pixels, { layers, select }).features;
        } else {
          const result = encoder.forward(pixels, { taps: [...layers, ...tapLayers], select });
          const mainParts = result.taps.slice(0, layers.length);
          main = mainParts.length === 1 ? mainParts[0]! : (tf.concat(mainParts, -1) as tf.Tensor3D);
          tapped = result.taps.slice(layers.length);
        }
        let start = 0;
        for (const i of indices) {
          const count = items[i]!.views;
          const slice = (t: tf.Tensor3D) => tf.slice(t, [start, 0, 0], [count, -1, -1]) as tf.Tensor3D;
          features[i] = postprocess(slice(main), patchGrid);
          tapped.forEach((t, k) => (taps[k]![i] = postprocess(slice(t), patchGrid)));
          start += count;
        }
      }
      return { features, taps };
    });
    return {
      features: out.features,
      tokensPerItem: items.map((item) => tokensFor(item)),
      grids: items.map((item) => gridFor(item)),
      ...(encodeOptions.taps ? { taps: Object.fromEntries(tapLayers.map((layer, k) => [layer, out.taps[k]!])) } : {}),
    };
  };

  const featureDim = config.hiddenSize * layers.length * (merge ? merge.factor * merge.factor : 1);
  return {
    name,
    mode,
    module: new ModalityModule({ encoder }),
    encoder,
    layers,
    select,
    patchEmbedding: null,
    featureDim,
    prepare,
    prepareAll: (raws) => raws.map(prepare),
    tokensFor,
    gridFor,
    continuousIn: { featureDim, encode },
  };
}

function fuyuModality(options: FuyuModeOptions, name: string, what: string): VisionModality {
  let embedding = options.embedding;
  if (embedding === undefined) {
    if (options.dim === undefined) throw new Error(`${what}: pass dim (the model width) or an existing embedding`);
    embedding = new RawPatchEmbedding({
      patchSize: options.patchSize ?? FUYU_PATCH_SIZE,
      dim: options.dim,
      rowBreaks: options.rowBreaks,
    });
  } else if (!(embedding instanceof RawPatchEmbedding)) {
    throw new Error(`${what}: 'embedding' must be a RawPatchEmbedding`);
  }
  const patchEmbedding = embedding;
  const patchSize = patchEmbedding.patchSize;
  const normalization: Normalization = options.normalization ?? 'siglip';
  resolveNormalization(normalization);
  const maxPixels = options.maxPixels ?? FUYU_MAX_PIXELS;
  if (!Number.isInteger(maxPixels) || maxPixels < 1) throw new Error(`${what}: maxPixels must be a positive integer, got ${maxPixels}`);
  const onOversize = options.onOversize ?? 'resize';
  const padColor: RgbColor = options.padColor ?? [1, 1, 1];
  const filter = options.filter ?? 'bicubic';
  const loader = inputLoader(options, normalization);
  const mode = 'fuyu' as const;

  const prepare = (raw: ImageInput): PreparedImage => {
    const image = capImage(loader.prepare(raw), maxPixels, onOversize, filter, what);
    // Padding a side shorter than one patch would make a patch that is mostly padding: refuse it instead.
    if (image.width < patchSize || image.height < patchSize) {
      throw new ImageInputError(
        'bad-pixels',
        `${what}: the image is ${image.width}x${image.height} (width x height), smaller than one ${patchSize}x${patchSize} patch; ` +
          `both sides must be at least ${patchSize} pixels: upscale or pad the image, or build the plugin with a smaller patchSize`,
      );
    }
    const grid = rawPatchGrid(image.height, image.width, patchSize);
    const height = grid.rows * patchSize;
    const width = grid.cols * patchSize;
    // Bottom/right padding in byte space, as Fuyu pads before normalizing.
    const padded = height === image.height && width === image.width ? image : cropImage(image, 0, 0, width, height, padColor);
    return {
      mode,
      pixels: normalizedValues(padded, normalization),
      views: 1,
      height,
      width,
      sourceWidth: image.width,
      sourceHeight: image.height,
    };
  };

  const patchGridOf = (item: PreparedImage): GridShape => {
    if (item.height % patchSize !== 0 || item.width % patchSize !== 0) {
      throw new Error(`${what}: a prepared ${item.width}x${item.height} image is not padded to the ${patchSize}-pixel patch; prepare it with this plugin`);
    }
    return { rows: item.height / patchSize, cols: item.width / patchSize };
  };

  const tokensFor = (item: PreparedImage, path?: ModalityPath): number => {
    checkPath(path, name);
    checkItem(item, mode, what);
    return patchEmbedding.tokenCount(patchGridOf(item));
  };

  const gridFor = (item: PreparedImage, path?: ModalityPath): MediaGrid => {
    checkPath(path, name);
    checkItem(item, mode, what);
    const grid = patchGridOf(item);
    return { rows: grid.rows, cols: grid.cols + (patchEmbedding.rowBreaks ? 1 : 0) };
  };

  const encode = (items: PreparedImage[], encodeOptions: EncodeOptions = {}): EncodedFeatures => {
    if (!Array.isArray(items) || items.length === 0) throw new Error(`${what}: encode needs a non-empty list of PreparedImages`);
    if (encodeOptions.taps && encodeOptions.taps.length > 0) {
      throw new Error(`${what}: the Fuyu path has no encoder layers to tap; drop the taps option`);
    }
    items.forEach((item) => checkItem(item, mode, what));
    const features = items.map((item) =>
      tf.tidy(() => patchEmbedding.forward(tf.tensor3d(item.pixels, [item.height, item.width, 3])).features),
    );
    return { features, tokensPerItem: items.map((item) => tokensFor(item)), grids: items.map((item) => gridFor(item)) };
  };

  return {
    name,
    mode,
    module: new ModalityModule({ patch_embed: patchEmbedding }),
    encoder: null,
    layers: null,
    select: null,
    patchEmbedding,
    featureDim: patchEmbedding.dim,
    prepare,
    prepareAll: (raws) => raws.map(prepare),
    tokensFor,
    gridFor,
    continuousIn: { featureDim: patchEmbedding.dim, encode },
  };
}
