/**
 * The Fuyu-style model (Bavishi et al. 2023, "Fuyu-8B: A Multimodal Architecture for AI Agents"): no image
 * encoder. The image is cut into raw patches, each patch flattened and projected by one Linear straight to the
 * decoder's width (the vision plugin's 'fuyu' mode, `image.patch_embed`), a learned row break follows every row
 * of patches, and the result is spliced into a small Llama's input embeddings where the <image> placeholder
 * stands (early fusion with no projector of its own: Fuyu's `vision_embed_tokens` is the only image-side
 * weight). Positions are the decoder's plain 1-D ones, as in Fuyu: the row breaks are what tells it the layout,
 * so any image size and aspect ratio is a sequence it can read.
 *
 * Each part draws its initial weights from its own seed, so a model built again from the same seed is the same
 * model: that is how the trainable checkpoint is checked.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, IMAGE, PAD, VOCAB_SIZE } from '@chimera-examples/shapes-vqa';
import { fourierInit } from './fourier-init';
import { Module, manualSeed } from '@chimera/core';
import { compose, earlyFusion, type ComposedModel } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { visionModality, type Normalization, type VisionModality } from '@chimera/vision-encoder';

export interface FuyuSize {
  /** Patch side in pixels (Fuyu-8B: 30). Image sides that are not multiples are padded at the bottom/right. */
  patchSize: number;
  /** Decoder width: the patch Linear projects straight to it. */
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /**
   * Pixel statistics: 'fuyu' (mean = std = 0.5, pixels in [-1, 1], Fuyu's) or 'dark' (mean 0.12, std 0.25: the
   * task's dark grey background lands near zero, so a background patch embeds to about the Linear's bias and a
   * shape's patch stands out).
   */
  pixels: PixelStats;
  /** The patch Linear's start: 'random' (core's fan-in uniform) or 'fourier' (fourier-init.ts). */
  patchInit: 'random' | 'fourier';
}

export type PixelStats = 'fuyu' | 'dark';

const PIXEL_STATS: Record<PixelStats, Normalization> = {
  fuyu: 'siglip',
  dark: { mean: [0.12, 0.12, 0.12], std: [0.25, 0.25, 0.25] },
};

export const DEFAULT_SIZE: FuyuSize = {
  patchSize: 16,
  hiddenSize: 96,
  numLayers: 3,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 384,
  pixels: 'dark',
  patchInit: 'fourier',
};

export interface Fuyu {
  model: ComposedModel;
  image: VisionModality;
}

/**
 * Fuyu's patch features are already at the decoder's width, so the fusion step adds no weights: this projector
 * passes them through (early fusion requires one; 'linear' would stack a second Linear on the patch one).
 */
export class IdentityProjector extends Module {
  readonly inputDim: number;
  readonly outputDim: number;

  constructor(dim: number) {
    super();
    this.inputDim = dim;
    this.outputDim = dim;
  }

  /** features [..., D] -> a copy (the caller owns it, as with any projector). */
  forward(features: tf.Tensor): tf.Tensor {
    return tf.clone(features);
  }
}

/** Seed streams of the parts. */
const LLM_SEED = 2;
const PATCH_SEED = 3;

/** Longest sequence the decoder's RoPE table covers: a 144x144 image at patch 8 is 342 tokens. */
const MAX_POSITIONS = 512;

/** Builds the composed model; every weight comes from `seed` (see the file comment). */
export function buildFuyu(size: FuyuSize, seed: number): Fuyu {
  manualSeed(deriveSeed(seed, PATCH_SEED));
  const image = visionModality({ mode: 'fuyu', patchSize: size.patchSize, dim: size.hiddenSize, normalization: PIXEL_STATS[size.pixels] });
  if (size.patchInit === 'fourier') fourierInit(image.patchEmbedding!);
  manualSeed(deriveSeed(seed, LLM_SEED));
  const backbone = new CausalLM(
    tinyLlama({
      vocabSize: VOCAB_SIZE,
      hiddenSize: size.hiddenSize,
      numLayers: size.numLayers,
      numHeads: size.numHeads,
      numKvHeads: size.numKvHeads,
      intermediateSize: size.intermediateSize,
      maxPositionEmbeddings: MAX_POSITIONS,
      bosTokenId: BOS,
      eosTokenId: EOS,
      padTokenId: PAD,
    }),
  );
  const model = compose({
    backbone,
    modalities: { image },
    fusion: { image: earlyFusion({ projector: (inputDim, outputDim) => identityProjector(inputDim, outputDim) }) },
    placeholders: { image: IMAGE },
  });
  return { model, image };
}

function identityProjector(inputDim: number, outputDim: number): IdentityProjector {
  if (inputDim !== outputDim) {
    throw new Error(`fuyu: the patch embedding is ${inputDim} wide but the decoder ${outputDim}; build the plugin with dim = the decoder's hiddenSize`);
  }
  return new IdentityProjector(inputDim);
}

/** Image tokens of a width x height image: one per patch plus one row break per row of patches. */
export function imageTokens(size: Pick<FuyuSize, 'patchSize'>, width: number, height: number): number {
  const rows = Math.ceil(height / size.patchSize);
  const cols = Math.ceil(width / size.patchSize);
  return rows * (cols + 1);
}
