/**
 * The parts of the tiny Flamingo (Alayrac et al. 2022, "Flamingo: a Visual Language Model for Few-Shot
 * Learning"): a Llama-family LLM over the word vocabulary (pre-trained on text, then frozen), a ViT image
 * encoder, and `@chimera/fusion`'s gated cross-attention strategy, which puts a Perceiver resampler behind the
 * ViT and zero-gated XATTN-DENSE blocks before every N-th LLM layer.
 */
import * as tf from '@tensorflow/tfjs';
import { init, manualSeed } from '@chimera/core';
import { compose, gatedCrossAttention, type ComposedModel } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality, type VisionModality } from '@chimera/vision-encoder';
import { BOS, END_OF_CHUNK, IMAGE, PAD, VOCAB_SIZE } from './vocabulary';

export interface FlamingoSize {
  /** Image side in pixels (the ViT's input) and its patch side. */
  imageSize: number;
  patchSize: number;
  visionHidden: number;
  visionLayers: number;
  visionHeads: number;
  visionFfn: number;
  llmHidden: number;
  llmLayers: number;
  llmHeads: number;
  llmFfn: number;
  /** Perceiver: latents per image (media tokens the text attends to), layers, heads and head width. */
  latents: number;
  perceiverDepth: number;
  perceiverHeads: number;
  perceiverHeadDim: number;
  /** A gated cross-attention block before every `xattnEvery`-th LLM layer (layers every-1, 2*every-1, ...). */
  xattnEvery: number;
}

export const DEFAULT_SIZE: FlamingoSize = {
  imageSize: 24,
  patchSize: 4,
  visionHidden: 48,
  visionLayers: 2,
  visionHeads: 4,
  visionFfn: 96,
  llmHidden: 64,
  llmLayers: 4,
  llmHeads: 4,
  llmFfn: 128,
  latents: 8,
  perceiverDepth: 1,
  perceiverHeads: 4,
  perceiverHeadDim: 16,
  xattnEvery: 2,
};

/**
 * A fresh LLM over the example's vocabulary, weights drawn from `seed`. The LM head starts at a PyTorch-Linear-like
 * scale (std 1 / sqrt(width)) rather than Llama's 0.02: text alone never tells the LLM which colour or kind is
 * right, so it never learns to separate those answer words in its head, and a frozen head can only express the
 * differences it was born with. At 0.02 they are so small that cross-attention can flip the argmax but never make
 * an answer confident; at this scale it can.
 */
export function buildLLM(size: FlamingoSize, seed: number): CausalLM {
  manualSeed(seed);
  const llm = new CausalLM(
    tinyLlama({
      vocabSize: VOCAB_SIZE,
      hiddenSize: size.llmHidden,
      numLayers: size.llmLayers,
      numHeads: size.llmHeads,
      numKvHeads: size.llmHeads,
      intermediateSize: size.llmFfn,
      maxPositionEmbeddings: 128,
      padTokenId: PAD,
      bosTokenId: BOS,
      eosTokenId: END_OF_CHUNK,
    }),
  );
  const head = llm.lm_head!.weight;
  tf.tidy(() => head.assign(init.normal(head.shape, 1 / Math.sqrt(size.llmHidden))));
  return llm;
}

/** The image plugin: a ViT from scratch (weights drawn from `seed`); its final (post-norm) patch features. */
export function buildVision(size: FlamingoSize, seed: number): VisionModality {
  manualSeed(seed);
  const encoder = new VisionTransformer(
    tinyViT({
      imageSize: size.imageSize,
      patchSize: size.patchSize,
      hiddenSize: size.visionHidden,
      numLayers: size.visionLayers,
      numHeads: size.visionHeads,
      intermediateSize: size.visionFfn,
    }),
  );
  return visionModality({ mode: 'vit', encoder, layers: 'final' });
}

/**
 * Composes the (pre-trained) LLM and the image plugin with gated cross-attention. The model owns both from here
 * on. Fusion weights are drawn from `seed`; the gates start at zero, so the model is exactly the LLM until trained.
 */
export function composeFlamingo(llm: CausalLM, image: VisionModality, size: FlamingoSize, seed: number): ComposedModel {
  manualSeed(seed);
  return compose({
    backbone: llm,
    modalities: { image },
    fusion: {
      image: gatedCrossAttention({
        layers: { every: size.xattnEvery },
        mode: 'latest', // each question sees the image just before it, never an earlier one
        resampler: {
          type: 'perceiver',
          numLatents: size.latents,
          depth: size.perceiverDepth,
          heads: size.perceiverHeads,
          headDim: size.perceiverHeadDim,
        },
      }),
    },
    placeholders: { image: IMAGE },
  });
}
