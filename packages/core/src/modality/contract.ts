/**
 * The modality contract: what a modality plugin (image, audio, ...) offers to fusion strategies. A plugin
 * owns its raw input (`prepare`), says how many sequence positions an item occupies (`tokensFor`), and
 * offers up to three paths: continuous in (`encode`), discrete in/out (`tokenize` / `lookup` /
 * `detokenize`, TorchMultimodal's tokenizer contract) and continuous out (a diffusion head's latent space).
 */
import type * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';

/** The paths a modality may support; each is the name of the property that implements it. */
export type ModalityPath = 'continuousIn' | 'discrete' | 'continuousOut';

/** Every {@link ModalityPath}, in canonical order. */
export const MODALITY_PATHS: readonly ModalityPath[] = ['continuousIn', 'discrete', 'continuousOut'];

/**
 * The layout of an item's positions, for 2-D RoPE, M-RoPE (Qwen2-VL) and row-break tokens. Positions are
 * ordered frame-major, then row, then column; `frames` is 1 for still images.
 */
export interface MediaGrid {
  /** Rows of positions. */
  rows: number;
  /** Columns of positions. */
  cols: number;
  /** Frames (default 1, a still image). */
  frames?: number;
}

/** Per-item tensors: one [N_i, D] tensor per item, or one batched [items, N, D] tensor when all N agree. */
export type ItemFeatures = tf.Tensor | tf.Tensor[];

/** What `encode` returns. The caller owns every tensor in it. */
export interface EncodedFeatures {
  /** Features [N_i, D] per item, or [items, N, D]. */
  features: ItemFeatures;
  /** Sequence positions each item occupies (N_i), in item order; equals `tokensFor` of the item. */
  tokensPerItem: number[];
  /** Grid per item, when the encoder has one. */
  grids?: (MediaGrid | undefined)[];
  /** Hidden states of the requested encoder layers (multi-layer taps), keyed by layer index, same layout. */
  taps?: Record<number, ItemFeatures>;
}

/** Options of {@link ContinuousInput.encode}. */
export interface EncodeOptions {
  /** Encoder layer indices whose outputs are returned in `taps` (LLaVA-style feature-layer choices). */
  taps?: number[];
}

/** Continuous in: an encoder producing features for splicing or cross-attention. */
export interface ContinuousInput<Prepared> {
  /** Feature width D of `encode`'s output. */
  readonly featureDim: number;
  /**
   * Encodes a batch of prepared items into features [N_i, D] per item (or [items, N, D]); the caller owns and
   * disposes every tensor returned.
   */
  encode(items: Prepared[], options?: EncodeOptions): EncodedFeatures;
}

/** Discrete in/out: a tokenizer over a codebook (VQ-VAE), as Chameleon and Janus use for images. */
export interface DiscreteCodec<Prepared, Output> {
  /** Number of codes; ids are in [0, codebookSize). */
  readonly codebookSize: number;
  /** Width of `lookup`'s embeddings. */
  readonly embeddingDim: number;
  /** Codes per item as a grid (e.g. [16, 16]); an item occupies the product of it in positions. */
  readonly latentGrid: readonly number[];
  /** ids int32 [items, N] in [0, codebookSize). */
  tokenize(items: Prepared[]): tf.Tensor;
  /** ids [..., N] -> embeddings [..., N, embeddingDim]. */
  lookup(ids: tf.Tensor): tf.Tensor;
  /** ids [items, N] -> one output per item. */
  detokenize(ids: tf.Tensor): Output[];
}

/** Continuous out: the latent space a diffusion head generates in (Transfusion). */
export interface ContinuousOutput<Output> {
  /** Latent shape of one item as it sits in the sequence: [positions, channels]. */
  readonly latentShape: readonly number[];
  /** Grid of the latent positions, for 2-D positions. */
  readonly latentGrid?: MediaGrid;
  /** latents [items, ...latentShape] -> one output per item. */
  decodeLatents(latents: tf.Tensor): Output[];
}

/**
 * A modality plugin. `Raw` is what `prepare` accepts (bytes, PCM, ...), `Prepared` its normalised form
 * (pixels, log-mel, ...), `Output` what generation paths give back.
 */
export interface Modality<Raw = unknown, Prepared = unknown, Output = Raw> {
  /** Registry key and parameter prefix (`image` -> `image.encoder.*`); no dots. */
  readonly name: string;
  /** Turns one raw input into the item form the paths take (decoding, resizing, resampling, ...). */
  prepare(raw: Raw): Prepared;
  /**
   * Sequence positions the item occupies on `path` (default: the first supported of continuousIn, discrete,
   * continuousOut). Placeholder expansion uses it, so it must agree with what that path produces.
   */
  tokensFor(item: Prepared, path?: ModalityPath): number;
  /** The item's grid on `path`, when it has one. */
  gridFor?(item: Prepared, path?: ModalityPath): MediaGrid | undefined;
  /** Continuous-in path: an encoder producing features. */
  readonly continuousIn?: ContinuousInput<Prepared>;
  /** Discrete in/out path: a codebook tokenizer. */
  readonly discrete?: DiscreteCodec<Prepared, Output>;
  /** Continuous-out path: a latent space a diffusion head generates in. */
  readonly continuousOut?: ContinuousOutput<Output>;
  /**
   * The trainable parts, as one Module whose children are named by role (`encoder`, `codebook`, ...), so a
   * composite that registers it under the modality's name exposes `image.encoder.*` to freezing.
   */
  readonly module?: Module;
}

/** Bundles a modality's trainable parts under role names: `new ModalityModule({ encoder, projector })`. */
export class ModalityModule extends Module {
  constructor(parts: Record<string, Module>) {
    super();
    for (const [role, part] of Object.entries(parts)) this.addModule(role, part);
  }
}

/** The paths a modality implements, in canonical order. */
export function supportedPaths(modality: Modality<any, any, any>): ModalityPath[] {
  return MODALITY_PATHS.filter((path) => modality[path] !== undefined);
}

/** The path `tokensFor` and `gridFor` use when none is given. */
export function defaultPath(modality: Modality<any, any, any>): ModalityPath {
  const paths = supportedPaths(modality);
  if (paths.length === 0) {
    throw new Error(
      `modality '${modality.name}' supports no path; implement at least one of continuousIn, discrete, continuousOut`,
    );
  }
  return paths[0]!;
}

/** The implementation of `path`, or a clear error naming what the modality does support. */
export function requirePath<P extends ModalityPath>(
  modality: Modality<any, any, any>,
  path: P,
): NonNullable<Modality<any, any, any>[P]> {
  const impl = modality[path];
  if (impl === undefined) {
    const paths = supportedPaths(modality);
    throw new Error(
      `modality '${modality.name}' has no ${path} path (it supports: ${paths.join(', ') || 'none'}); ` +
        `pick a supported path or a modality that implements ${path}`,
    );
  }
  return impl as NonNullable<Modality<any, any, any>[P]>;
}

/** Checks a modality's declaration (name, at least one path) and returns it. */
export function validateModality<M extends Modality<any, any, any>>(modality: M): M {
  if (typeof modality.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(modality.name)) {
    throw new Error(
      `modality name '${String(modality.name)}' is invalid: use letters, digits, '_' or '-' (no dots), e.g. 'image'`,
    );
  }
  defaultPath(modality);
  return modality;
}

/** Number of positions of a grid (frames x rows x cols). */
export function gridSize(grid: MediaGrid): number {
  return (grid.frames ?? 1) * grid.rows * grid.cols;
}
