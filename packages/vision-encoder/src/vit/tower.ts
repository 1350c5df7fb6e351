/**
 * The ViT vision tower (Dosovitskiy et al. 2021) in its CLIP (Radford et al. 2021) and SigLIP (Zhai et al. 2023)
 * forms, with multi-layer feature taps (LLaVA's `vision_feature_layer`, Liu et al. 2023; multi-layer features
 * as in Qwen-VL's DeepStack) and LLaVA's CLS selection strategy.
 *
 * Data walk, for pixels [B, H, W, C] (NHWC, normalized float32; H and W any multiples of the patch size, or any
 * size with config.dropRemainder, which ignores the bottom/right border under one patch as HF's conv does):
 *   patch_embedding -> [B, N, D] (N = rows*cols, row-major) -> prepend CLS ([B, 1+N, D], CLIP)
 *   -> + learned positions (bicubic-resized when the grid differs from the trained one) -> pre_layrnorm (CLIP)
 *   = hidden state 0 -> layers[0..L-1] (state i = after layer i) -> post_layernorm = the final output.
 *
 * Tap indices follow HF's `hidden_states` tuple: 0 is the embeddings (after pre_layrnorm for CLIP), i in 1..L
 * is the output of layer i (no final norm), negative indices count from the end (-1 = L, -2 = LLaVA's default
 * penultimate layer). 'final' is the output after post_layernorm (HF SigLIP's last_hidden_state; for CLIP,
 * token 0 of it is HF's pooler_output).
 *
 * Selection ('default' | 'full', LLaVA's vision_feature_select_strategy): 'default' drops the CLS token from
 * every returned sequence, 'full' keeps it. Towers without CLS (SigLIP) return all patches either way.
 * `forward` keeps CLS unless told; `features` (the LLaVA path) drops it unless told.
 *
 * For the modality plugin: `features(pixels, { layers, select })` returns one tensor [B, N', D * layers] and
 * computes no layer past the deepest one requested; `tokenCount(height, width, select)` is its N' without
 * running anything, so placeholder counts agree with the encoder by construction.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, Module, init, type RotaryTables } from '@chimera/core';
import { type ViTConfig, trainedGridSize, validateViTConfig } from './config';
import { PatchEmbedding, type PatchGrid } from './patch-embedding';
import { LearnedPositions, Rope2dPositions } from './positions';
import { ViTBlock } from './block';

/** An HF hidden_states index (negative from the end) or 'final' (after post_layernorm). */
export type FeatureLayer = number | 'final';

/** LLaVA's vision_feature_select_strategy: 'default' drops CLS, 'full' keeps it. */
export type FeatureSelect = 'default' | 'full';

/** Options of {@link VisionTransformer.forward}. */
export interface ViTForwardOptions {
  /** Hidden states to return besides the final output (see the file comment for the indexing). */
  taps?: FeatureLayer | readonly FeatureLayer[];
  /** Return the taps as one tensor concatenated along features (in the requested order). Default false. */
  concat?: boolean;
  /** Default 'full' here: the raw tower output with CLS. */
  select?: FeatureSelect;
}

/** What {@link VisionTransformer.forward} returns; the caller owns the tensors. */
export interface ViTOutput {
  /** Shape [B, T, D]: the last layer's output after post_layernorm (when the config has one). */
  hidden: tf.Tensor3D;
  /** One [B, T, D] per requested tap, in the requested order; with `concat`, exactly one [B, T, D * taps]. */
  taps: tf.Tensor3D[];
  /** The patch grid of the input. */
  grid: PatchGrid;
  /** Whether token 0 of the returned sequences is the CLS token. */
  hasClsToken: boolean;
}

/** Options of {@link VisionTransformer.features}. */
export interface ViTFeaturesOptions {
  /** One layer or several (concatenated along features). Default -2 (LLaVA's vision_feature_layer). */
  layers?: FeatureLayer | readonly FeatureLayer[];
  /** Default 'default' (drop CLS), as LLaVA. */
  select?: FeatureSelect;
}

/** What {@link VisionTransformer.features} returns; the caller owns `features`. */
export interface ViTFeatures {
  /** [B, T, D * layers.length]. */
  features: tf.Tensor3D;
  /** The patch grid of the input. */
  grid: PatchGrid;
  /** Whether token 0 is the CLS token. */
  hasClsToken: boolean;
  /** The requested layers as non-negative hidden_states indices ('final' stays 'final'). */
  layers: FeatureLayer[];
}

/**
 * The ViT vision tower in its CLIP and SigLIP forms, with multi-layer feature taps and LLaVA's CLS selection. pixels
 * [B, H, W, C] (NHWC, normalised float32) -> tokens [B, (1 +) rows*cols, D]. Names follow HF's `vision_model.*`.
 */
export class VisionTransformer extends Module {
  /** The tower's config. */
  readonly config: ViTConfig;
  /** Patch projection. */
  readonly patch_embedding: PatchEmbedding;
  /** The CLS vector [D], or null without a CLS token. */
  readonly class_embedding: tf.Variable | null; // [D]
  /** Learned positions, or null with 2-D RoPE. */
  readonly position_embedding: LearnedPositions | null;
  /** LayerNorm before the first block (CLIP; HF's spelling), or null. */
  readonly pre_layrnorm: LayerNorm | null;
  /** The encoder blocks. */
  readonly layers: ViTBlock[];
  /** LayerNorm after the last block, or null. */
  readonly post_layernorm: LayerNorm | null;
  private readonly rope: Rope2dPositions | null;

  constructor(config: ViTConfig) {
    super();
    validateViTConfig(config);
    this.config = { ...config };
    const { hiddenSize: dim, layerNormEps: eps } = config;
    this.patch_embedding = this.addModule(
      'patch_embedding',
      new PatchEmbedding(config.channels, dim, config.patchSize, { bias: config.patchBias }),
    );
    this.class_embedding = config.clsToken ? this.addParameter('class_embedding', init.normal([dim], dim ** -0.5)) : null;
    this.position_embedding =
      config.positions === 'learned'
        ? this.addModule('position_embedding', new LearnedPositions(trainedGridSize(config), dim, { clsPosition: config.clsToken }))
        : null;
    this.rope = config.positions === 'rope2d' ? new Rope2dPositions(dim / config.numHeads, config.ropeTheta) : null;
    this.pre_layrnorm = config.preNorm ? this.addModule('pre_layrnorm', new LayerNorm(dim, { eps })) : null;
    this.layers = this.addModuleList(
      'layers',
      Array.from({ length: config.numLayers }, () => new ViTBlock(config)),
    );
    this.post_layernorm = config.postNorm ? this.addModule('post_layernorm', new LayerNorm(dim, { eps })) : null;
  }

  /**
   * The patch grid for an input of this size; throws when a side is not a positive multiple of the patch (with
   * config.dropRemainder, a leftover border under one patch is dropped instead, as PyTorch's strided conv does).
   */
  patchGrid(height: number, width: number): PatchGrid {
    const p = this.config.patchSize;
    const drop = this.config.dropRemainder;
    const ok = (side: number) => Number.isInteger(side) && side >= p && (drop || side % p === 0);
    if (!ok(height) || !ok(width)) {
      const round = (side: number) => Math.max(p, Math.round(side / p) * p);
      throw new Error(
        `VisionTransformer: input ${height}x${width} (HxW) is not a grid of ${p}x${p} patches; height and width must ` +
          `be ${drop ? `at least ${p}` : `positive multiples of ${p}`} (e.g. resize or pad to ${round(height)}x${round(width)})`,
      );
    }
    return { rows: Math.floor(height / p), cols: Math.floor(width / p) };
  }

  /** Sequence length forward/features return for an input of this size (CLS included when kept). */
  tokenCount(height: number, width: number, select: FeatureSelect = 'full'): number {
    const { rows, cols } = this.patchGrid(height, width);
    return rows * cols + (this.keepsCls(select) ? 1 : 0);
  }

  /** The hidden_states index a tap refers to (negative from the end), or 'final'; throws when out of range. */
  resolveLayer(layer: FeatureLayer): FeatureLayer {
    if (layer === 'final') return layer;
    const count = this.config.numLayers;
    if (!Number.isInteger(layer) || layer > count || layer < -(count + 1)) {
      throw new Error(
        `VisionTransformer: tap ${JSON.stringify(layer)} is out of range; this tower has ${count} layers, so ` +
          `hidden_states indices run 0..${count} or -${count + 1}..-1 (0 = embeddings, -1 = last layer), or 'final'`,
      );
    }
    return layer < 0 ? count + 1 + layer : layer;
  }

  /** pixels [B, H, W, C] -> the final output and any taps (see the file comment). */
  forward(pixels: tf.Tensor4D, options: ViTForwardOptions = {}): ViTOutput {
    const taps = this.resolveLayers(options.taps ?? []);
    const select = checkSelect(options.select ?? 'full');
    const grid = this.checkPixels(pixels);
    const { hidden, taps: tapped } = tf.tidy(() => {
      const states = this.run(pixels, grid, [...taps, 'final']);
      let selected = taps.map((t) => this.selectTokens(states.get(t)!, select));
      if (options.concat && selected.length > 1) selected = [tf.concat(selected, -1) as tf.Tensor3D];
      return { hidden: this.selectTokens(states.get('final')!, select), taps: selected };
    });
    return { hidden, taps: tapped, grid, hasClsToken: this.keepsCls(select) };
  }

  /**
   * LLaVA-style features: the requested layers, CLS dropped unless select 'full', concatenated along features.
   * Layers past the deepest requested one are not computed.
   */
  features(pixels: tf.Tensor4D, options: ViTFeaturesOptions = {}): ViTFeatures {
    const layers = this.resolveLayers(options.layers ?? -2);
    if (layers.length === 0) throw new Error('VisionTransformer.features: pass at least one layer (e.g. layers: -2)');
    const select = checkSelect(options.select ?? 'default');
    const grid = this.checkPixels(pixels);
    const features = tf.tidy(() => {
      const states = this.run(pixels, grid, layers);
      const selected = layers.map((l) => this.selectTokens(states.get(l)!, select));
      return (selected.length === 1 ? selected[0]! : tf.concat(selected, -1)) as tf.Tensor3D;
    });
    return { features, grid, hasClsToken: this.keepsCls(select), layers };
  }

  /** Embeddings and blocks up to the deepest wanted state; returns the wanted states by index. */
  private run(pixels: tf.Tensor4D, grid: PatchGrid, wanted: readonly FeatureLayer[]): Map<FeatureLayer, tf.Tensor3D> {
    const batch = pixels.shape[0];
    const needsFinal = wanted.includes('final');
    const depth = needsFinal ? this.config.numLayers : Math.max(...(wanted as number[]));
    const states = new Map<FeatureLayer, tf.Tensor3D>();
    let x = this.embed(pixels, grid);
    if (wanted.includes(0)) states.set(0, x);
    const rotary: RotaryTables | undefined = this.rope?.tables(batch, grid, this.config.clsToken);
    for (let i = 0; i < depth; i++) {
      x = this.layers[i]!.forward(x, rotary);
      if (wanted.includes(i + 1)) states.set(i + 1, x);
    }
    if (needsFinal) states.set('final', this.post_layernorm ? (this.post_layernorm.forward(x) as tf.Tensor3D) : x);
    return states;
  }

  /** Hidden state 0: patches (+ CLS) + positions, then pre_layrnorm. [B, T, D]. */
  private embed(pixels: tf.Tensor4D, grid: PatchGrid): tf.Tensor3D {
    const [batch] = pixels.shape;
    const dim = this.config.hiddenSize;
    const p = this.config.patchSize;
    const whole =
      pixels.shape[1] === grid.rows * p && pixels.shape[2] === grid.cols * p
        ? pixels
        : tf.slice(pixels, [0, 0, 0, 0], [-1, grid.rows * p, grid.cols * p, -1]); // dropRemainder
    let x: tf.Tensor = this.patch_embedding.forward(whole); // [B, N, D]
    if (this.class_embedding) {
      const cls = tf.tile(tf.reshape(this.class_embedding, [1, 1, dim]), [batch, 1, 1]);
      x = tf.concat([cls, x], 1); // [B, 1 + N, D]
    }
    if (this.position_embedding) x = tf.add(x, this.position_embedding.forward(grid));
    if (this.pre_layrnorm) x = this.pre_layrnorm.forward(x);
    return x as tf.Tensor3D;
  }

  private selectTokens(x: tf.Tensor3D, select: FeatureSelect): tf.Tensor3D {
    if (!this.config.clsToken || select === 'full') return x;
    return tf.slice(x, [0, 1, 0], [-1, -1, -1]);
  }

  private keepsCls(select: FeatureSelect): boolean {
    return this.config.clsToken && select === 'full';
  }

  private resolveLayers(layers: FeatureLayer | readonly FeatureLayer[]): FeatureLayer[] {
    const list = Array.isArray(layers) ? (layers as readonly FeatureLayer[]) : [layers as FeatureLayer];
    return list.map((l) => this.resolveLayer(l));
  }

  private checkPixels(pixels: tf.Tensor): PatchGrid {
    const channels = this.config.channels;
    if (!(pixels instanceof tf.Tensor) || pixels.isDisposed) {
      throw new Error('VisionTransformer: pixels must be a live tf.Tensor [B, H, W, C]');
    }
    if (pixels.rank !== 4 || pixels.shape[3] !== channels) {
      const hint =
        pixels.rank === 3 && pixels.shape[2] === channels
          ? '; add a batch axis (tf.expandDims(pixels, 0))'
          : pixels.rank === 4 && pixels.shape[1] === channels
            ? '; the input looks NCHW: transpose it to NHWC (tf.transpose(pixels, [0, 2, 3, 1]))'
            : '';
      throw new Error(
        `VisionTransformer: expected pixels [batch, height, width, ${channels}] (NHWC), got [${pixels.shape}]${hint}`,
      );
    }
    if (pixels.dtype !== 'float32') {
      throw new Error(
        `VisionTransformer: expected float32 pixels (normalized, e.g. from imageToTensor), got ${pixels.dtype}; ` +
          'normalize the image first',
      );
    }
    if (pixels.shape[0] === 0) throw new Error('VisionTransformer: the batch is empty (batch size 0)');
    return this.patchGrid(pixels.shape[1]!, pixels.shape[2]!);
  }
}

function checkSelect(select: FeatureSelect): FeatureSelect {
  if (select !== 'default' && select !== 'full') {
    throw new Error(`VisionTransformer: select must be 'default' (drop CLS) or 'full' (keep CLS), got ${JSON.stringify(select)}`);
  }
  return select;
}
