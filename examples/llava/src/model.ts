/**
 * The LLaVA-style model (Liu et al. 2023, "Visual Instruction Tuning"; the mlp2x_gelu projector of LLaVA-1.5,
 * "Improved Baselines with Visual Instruction Tuning"): a ViT image tower, an MLP projector to the LLM width and a
 * small Llama-family LLM, composed with @chimera/fusion's early fusion. The projected patch tokens are spliced into
 * the LLM's input embeddings where the <image> placeholder stands.
 *
 * Each part draws its initial weights from its own seed, so a part built again from the same seed is the same
 * part whatever else changed: that is how a trainable-only checkpoint finds its frozen ViT again.
 */
import { deriveSeed } from '@chimera-examples/shapes-dataset';
import { manualSeed } from '@chimera/core';
import { compose, earlyFusion, type ComposedModel, type ProjectorSpec } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality, type FeatureLayer, type ViTPositions, type VisionModality } from '@chimera/vision-encoder';
import { EOS, IMAGE, PAD, BOS, VOCAB_SIZE } from '@chimera-examples/shapes-vqa';

export interface VisionSize {
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** 'rope2d' (rotary on row and column: relative, so a shape looks the same wherever it is) or 'learned'. */
  positions: ViTPositions;
  /** The tap LLaVA reads (its vision_feature_layer): -2 is the penultimate layer, -1 the last. */
  featureLayer: FeatureLayer;
  /** Concatenate k x k neighbouring patch features into one token (1: none): k*k times fewer image tokens. */
  merge: number;
}

export interface LanguageSize {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
}

export interface LlavaSize {
  vision: VisionSize;
  llm: LanguageSize;
  projector: ProjectorSpec;
}

export const DEFAULT_SIZE: LlavaSize = {
  vision: { imageSize: 32, patchSize: 4, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, positions: 'rope2d', featureLayer: -1, merge: 2 },
  llm: { hiddenSize: 64, numLayers: 3, numHeads: 4, numKvHeads: 2, intermediateSize: 128 },
  projector: 'mlp2x_gelu',
};

export interface Llava {
  model: ComposedModel;
  image: VisionModality;
}

/** Seed streams of the parts. */
const VISION_SEED = 1;
const LLM_SEED = 2;
const PROJECTOR_SEED = 3;

/** Builds the composed model; every part's weights come from `seed` (see the file comment). */
export function buildLlava(size: LlavaSize, seed: number): Llava {
  const { vision, llm } = size;
  manualSeed(deriveSeed(seed, VISION_SEED));
  const tower = new VisionTransformer(
    tinyViT({
      imageSize: vision.imageSize,
      patchSize: vision.patchSize,
      hiddenSize: vision.hiddenSize,
      numLayers: vision.numLayers,
      numHeads: vision.numHeads,
      intermediateSize: vision.intermediateSize,
      positions: vision.positions,
    }),
  );
  const image = visionModality({
    mode: 'vit',
    encoder: tower,
    layers: vision.featureLayer,
    ...(vision.merge > 1 ? { merge: vision.merge } : {}),
  });
  manualSeed(deriveSeed(seed, LLM_SEED));
  const backbone = new CausalLM(
    tinyLlama({
      vocabSize: VOCAB_SIZE,
      hiddenSize: llm.hiddenSize,
      numLayers: llm.numLayers,
      numHeads: llm.numHeads,
      numKvHeads: llm.numKvHeads,
      intermediateSize: llm.intermediateSize,
      bosTokenId: BOS,
      eosTokenId: EOS,
      padTokenId: PAD,
    }),
  );
  manualSeed(deriveSeed(seed, PROJECTOR_SEED));
  const model = compose({
    backbone,
    modalities: { image },
    fusion: { image: earlyFusion({ projector: size.projector }) },
    placeholders: { image: IMAGE },
  });
  return { model, image };
}

/** Image tokens per picture: the tower's patch grid, merged. */
export function imageTokens(vision: VisionSize): number {
  const side = vision.imageSize / vision.patchSize / vision.merge;
  return side * side;
}
