/**
 * The two arms, built from the same parts (NVLM, Dai et al. 2024, "NVLM: Open Frontier-Class Multimodal LLMs"):
 *
 *   hybrid (NVLM-H)   the ViT's thumbnail tokens, through an MLP projector, spliced into the LLM's input after
 *                     <bos>; the high-resolution tiles through zero-gated cross-attention blocks, each tile behind
 *                     its 1-D tile tag <tile_i> (@chimera/fusion's nvlmHybrid)
 *   thumbnail-only    the same ViT, projector and LLM without the tile path: early fusion of the thumbnail alone
 *                     (the ablation that shows the thumbnail is too coarse)
 *
 * The ViT is a 'tiles' mode plugin (InternVL / NVLM dynamic tiling): the image is stretched to the grid of 32 px
 * tiles closest to its aspect ratio (at most 16 tiles) and a 32 px thumbnail of the whole image is added. It is
 * pretrained once (the stand-in for InternViT) and frozen; the arms read its features, computed once per image
 * (frozen-views.ts).
 *
 * Each part draws its initial weights from its own seed stream, so both arms start from the same ViT, projector
 * and LLM, and a part rebuilt from the seed is the same part: that is how the trainable-only checkpoint finds its
 * frozen ViT again.
 */
import { manualSeed } from '@chimera/core';
import { compose, earlyFusion, nvlmHybrid, type ComposedModel, type ProjectorSpec } from '@chimera/fusion';
import { CausalLM, tinyLlama, type LayerSelection } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality, type VisionModality } from '@chimera/vision-encoder';
import { deriveSeed } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, PAD } from '@chimera-examples/shapes-vqa';
import { thumbnailFeaturePlugin, tilesFeaturePlugin, type FeaturePlugin } from './frozen-views';
import { LLM_VOCAB_SIZE, TILE_TAGS } from './vocabulary';

export interface VisionSize {
  /** Tile and thumbnail side in pixels: the ViT's input. */
  tileSize: number;
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** The tile budget (thumbnail not counted); at most 16, the tags there are. */
  maxTiles: number;
  /**
   * Pixel shuffle (InternVL / NVLM): each k x k window of patch features becomes one token of k*k times the width,
   * so a tile gives k*k times fewer cross-attention keys (1: none).
   */
  merge: number;
  /** Average k x k windows of each view's tokens (frozen-views.ts): k*k times fewer keys of the same width (1: none). */
  pool: number;
}

export interface LanguageSize {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
}

export interface NvlmSize {
  vision: VisionSize;
  llm: LanguageSize;
  /** The thumbnail projector (NVLM's MLP). */
  projector: ProjectorSpec;
  /** LLM layers a gated cross-attention block goes before. */
  xattnLayers: LayerSelection;
  /** Tile tags in the sequence (NVLM-H's 1-D tags), or none. */
  tileTags: boolean;
}

export const DEFAULT_SIZE: NvlmSize = {
  vision: { tileSize: 32, patchSize: 4, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, maxTiles: 16, merge: 2, pool: 1 },
  llm: { hiddenSize: 64, numLayers: 3, numHeads: 4, numKvHeads: 2, intermediateSize: 128 },
  projector: 'mlp2x_gelu',
  xattnLayers: [1, 2],
  tileTags: true,
};

export type ArmName = 'hybrid' | 'thumbnail';

/** Seed streams of the parts. */
const VISION_SEED = 1;
const LLM_SEED = 2;
const FUSION_SEED = 3;

/** A fresh ViT from the seed (the same one for the pretraining and for both arms). */
export function buildViT(vision: VisionSize, seed: number): VisionTransformer {
  manualSeed(deriveSeed(seed, VISION_SEED));
  return new VisionTransformer(
    tinyViT({
      imageSize: vision.tileSize,
      patchSize: vision.patchSize,
      hiddenSize: vision.hiddenSize,
      numLayers: vision.numLayers,
      numHeads: vision.numHeads,
      intermediateSize: vision.intermediateSize,
      positions: 'rope2d',
    }),
  );
}

/** The 'tiles' mode plugin over a ViT: up to maxTiles tiles and always a thumbnail (last), last-layer features. */
export function tilesPlugin(encoder: VisionTransformer, vision: VisionSize): VisionModality {
  if (vision.maxTiles > TILE_TAGS.length) throw new Error(`maxTiles is ${vision.maxTiles}, but the vocabulary has ${TILE_TAGS.length} tile tags; use at most ${TILE_TAGS.length}`);
  return visionModality({
    mode: 'tiles',
    encoder,
    tileSize: vision.tileSize,
    maxTiles: vision.maxTiles,
    thumbnail: 'last',
    thumbnailWithSingleTile: true,
    layers: -1,
    ...(vision.merge > 1 ? { merge: { method: 'pixel-shuffle', factor: vision.merge } } : {}),
  });
}

/** A fresh LLM over the shared vocabulary and the tile tags. */
export function buildLLM(llm: LanguageSize, seed: number): CausalLM {
  manualSeed(deriveSeed(seed, LLM_SEED));
  return new CausalLM(
    tinyLlama({
      vocabSize: LLM_VOCAB_SIZE,
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
}

export interface Arm {
  name: ArmName;
  model: ComposedModel;
  /** The arm's image plugin over precomputed features; its `encoder` is the model's ViT. */
  image: FeaturePlugin;
}

/**
 * One arm: a fresh ViT, LLM and fusion from `seed` (load the pretrained ViT into `image.encoder` before encoding
 * with it). The model owns every part.
 */
export function buildArm(name: ArmName, size: NvlmSize, seed: number): Arm {
  const encoder = buildViT(size.vision, seed);
  const featureDim = size.vision.hiddenSize * size.vision.merge * size.vision.merge;
  const image = name === 'hybrid' ? tilesFeaturePlugin(encoder, featureDim) : thumbnailFeaturePlugin(encoder, featureDim);
  const backbone = buildLLM(size.llm, seed);
  manualSeed(deriveSeed(seed, FUSION_SEED));
  const fusion =
    name === 'hybrid'
      ? nvlmHybrid({
          projector: size.projector,
          layers: size.xattnLayers,
          tileTags: size.tileTags ? TILE_TAGS.slice(0, size.vision.maxTiles) : false,
          maxTiles: size.vision.maxTiles,
        })
      : earlyFusion({ projector: size.projector });
  const model = compose({ backbone, modalities: { image }, fusion: { image: fusion } });
  return { name, model, image };
}
