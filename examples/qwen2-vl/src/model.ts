/**
 * The Qwen2-VL-style model (Wang et al. 2024, "Qwen2-VL: Enhancing Vision-Language Model's Perception of the World
 * at Any Resolution"), small:
 *
 *   image at its own size --smart resize to multiples of patch*2--> ViT with 2-D RoPE (no absolute positions, so
 *   any grid works) --2x2 concat merge--> patch merger (LayerNorm + MLP, the projector) --early fusion--> a small
 *   Llama whose RoPE is M-RoPE: every image token gets (t, h, w) position ids from its cell in the token grid,
 *   text gets (p, p, p) and continues after the image's largest id.
 *
 * The vision plugin's 'native' mode does the resize, the tower at that size and the merge; core's packer turns
 * the plugin's grid into the M-RoPE ids (compose's `pack: { positions: 'mrope' }`, which compose requires of an
 * M-RoPE backbone). Each part draws its initial weights from its own seed stream, so a part built again from the
 * same seed is the same part: that is how the trainable-only checkpoint finds its frozen ViT again.
 */
import { manualSeed } from '@chimera/core';
import { compose, earlyFusion, type ComposedModel } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { VisionTransformer, vitConfig, visionModality, type VisionModality } from '@chimera/vision-encoder';
import { deriveSeed } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, IMAGE, PAD, VOCAB_SIZE } from '@chimera-examples/shapes-vqa';
import { patchMerger } from './merger';

export interface VisionSize {
  /** Patch side in pixels; images are resized to multiples of patchSize * 2 (the merge window). */
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
}

export interface LanguageSize {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** Rotating pairs per M-RoPE axis (temporal, height, width), summing to headDim / 2. */
  mropeSections: [number, number, number];
  /** Base of the RoPE frequency ladder. */
  ropeTheta: number;
}

export interface Qwen2VLSize {
  vision: VisionSize;
  llm: LanguageSize;
}

/** Patches merged per side (Qwen2-VL's spatial_merge_size). */
export const MERGE = 2;

/**
 * Head dim 16 on both sides. The LLM's 8 rotating pairs split 2 / 3 / 3 over t, h, w, Qwen2-VL's proportions
 * ([16, 24, 24] of 64 pairs).
 */
export const DEFAULT_SIZE: Qwen2VLSize = {
  vision: { patchSize: 8, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128 },
  llm: { hiddenSize: 64, numLayers: 3, numHeads: 4, numKvHeads: 2, intermediateSize: 128, mropeSections: [2, 3, 3], ropeTheta: 10000 },
};

/**
 * Processed-pixel bounds of the native resize: wide enough that every fine-detail image (96-144 px a side, all
 * multiples of 16) keeps its size exactly.
 */
export const MIN_PIXELS = 16 * 16;
export const MAX_PIXELS = 256 * 256;

export interface Qwen2VL {
  model: ComposedModel;
  image: VisionModality;
  tower: VisionTransformer;
}

/** Seed streams of the parts. */
const VISION_SEED = 1;
const LLM_SEED = 2;
const PROJECTOR_SEED = 3;

/** The ViT's patch features the merger reads: its last layer (Qwen2-VL's tower has no final norm; ln_q is it). */
export const FEATURE_LAYER = -1;

/** Builds the composed model; every part's weights come from `seed` (see the file comment). */
export function buildQwen2VL(size: Qwen2VLSize, seed: number): Qwen2VL {
  const { vision, llm } = size;
  manualSeed(deriveSeed(seed, VISION_SEED));
  const tower = new VisionTransformer(
    vitConfig({
      family: null,
      imageSize: vision.patchSize * MERGE * 8, // only learned positions use it; 2-D RoPE takes any grid
      patchSize: vision.patchSize,
      hiddenSize: vision.hiddenSize,
      numLayers: vision.numLayers,
      numHeads: vision.numHeads,
      intermediateSize: vision.intermediateSize,
      positions: 'rope2d',
      clsToken: false,
      preNorm: false,
      postNorm: false,
      patchBias: false,
      activation: 'quick_gelu',
      layerNormEps: 1e-6,
    }),
  );
  const image = visionModality({ mode: 'native', encoder: tower, mergeSize: MERGE, layers: FEATURE_LAYER, minPixels: MIN_PIXELS, maxPixels: MAX_PIXELS });
  manualSeed(deriveSeed(seed, LLM_SEED));
  const backbone = new CausalLM(
    tinyLlama({
      vocabSize: VOCAB_SIZE,
      hiddenSize: llm.hiddenSize,
      numLayers: llm.numLayers,
      numHeads: llm.numHeads,
      numKvHeads: llm.numKvHeads,
      intermediateSize: llm.intermediateSize,
      mropeSections: [...llm.mropeSections],
      ropeTheta: llm.ropeTheta,
      bosTokenId: BOS,
      eosTokenId: EOS,
      padTokenId: PAD,
    }),
  );
  manualSeed(deriveSeed(seed, PROJECTOR_SEED));
  const model = compose({
    backbone,
    modalities: { image },
    fusion: { image: earlyFusion({ projector: patchMerger }) },
    placeholders: { image: IMAGE },
    pack: { positions: 'mrope' },
  });
  return { model, image, tower };
}

/** Image tokens of a width x height image: the merged token grid of its native-resolution patches. */
export function imageTokens(image: VisionModality, width: number, height: number): number {
  return image.tokensFor(image.prepare({ data: new Uint8Array(width * height * 3), width, height }));
}
