/**
 * The parts of the tiny Audio Flamingo (Kong et al. 2024, "Audio Flamingo: A Novel Audio Language Model with
 * Few-Shot Learning and Dialogue Abilities"): a Llama-family LLM over the word vocabulary (pre-trained on text,
 * then frozen); a Whisper-style encoder over sliding windows of the log-mel features with a small window encoder
 * (Audio Flamingo's representation transformation layers) and 2x pooling (pre-trained on the sounds, then
 * frozen); and either @chimera/fusion's gated cross-attention with a Perceiver (Audio Flamingo) or early fusion
 * of the pooled tokens at `<audio>` (Audio Flamingo 3, Goel et al. 2025; Qwen-Audio, Chu et al. 2023). Both
 * recipes use the same audio plugin.
 */
import * as tf from '@tensorflow/tfjs';
import { init, manualSeed } from '@chimera/core';
import { compose, earlyFusion, gatedCrossAttention, type ComposedModel } from '@chimera/fusion';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { WhisperEncoder, audioModality, whisperEncoderConfig, type AudioModality } from '@chimera/audio-encoder';
import { AUDIO, BOS, END_OF_CHUNK, PAD, VOCAB_SIZE } from './vocabulary';

export interface AudioFlamingoSize {
  melBins: number;
  /** Sliding windows in mel frames (100 per second): every window is encoded on its own. */
  window: number;
  hop: number;
  maxWindows: number;
  encoderHidden: number;
  encoderLayers: number;
  encoderHeads: number;
  encoderFfn: number;
  /** Blocks of the window encoder over all windows' tokens (it adds a per-window embedding). */
  windowLayers: number;
  /** Average pooling of the encoder output (Audio Flamingo 3: 2). */
  pool: number;
  llmHidden: number;
  llmLayers: number;
  llmHeads: number;
  llmFfn: number;
  latents: number;
  perceiverDepth: number;
  perceiverHeads: number;
  perceiverHeadDim: number;
  xattnEvery: number;
}

export const DEFAULT_SIZE: AudioFlamingoSize = {
  melBins: 80,
  window: 150, // 1.5 s: a 2-6 s clip spans 2-4 windows
  hop: 150,
  maxWindows: 4,
  encoderHidden: 64,
  encoderLayers: 2,
  encoderHeads: 4,
  encoderFfn: 128,
  windowLayers: 1,
  pool: 2,
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
 * A fresh LLM over the example's vocabulary (weights from `seed`). The LM head starts at std 1/sqrt(width) rather
 * than 0.02 (as examples/flamingo explains): text alone never separates the answers of a type, and a frozen head
 * can only express the differences it was born with.
 */
export function buildLLM(size: AudioFlamingoSize, seed: number): CausalLM {
  manualSeed(seed);
  const llm = new CausalLM(
    tinyLlama({
      vocabSize: VOCAB_SIZE,
      hiddenSize: size.llmHidden,
      numLayers: size.llmLayers,
      numHeads: size.llmHeads,
      numKvHeads: size.llmHeads,
      intermediateSize: size.llmFfn,
      maxPositionEmbeddings: 256, // early fusion splices up to maxWindows * window / (2 * pool) audio tokens
      padTokenId: PAD,
      bosTokenId: BOS,
      eosTokenId: END_OF_CHUNK,
    }),
  );
  const head = llm.lm_head!.weight;
  tf.tidy(() => head.assign(init.normal(head.shape, 1 / Math.sqrt(size.llmHidden))));
  return llm;
}

/** The audio plugin: encoder and window encoder from scratch (weights from `seed`), windows, 2x pooling. */
export function buildAudio(size: AudioFlamingoSize, seed: number): AudioModality {
  manualSeed(seed);
  const encoder = new WhisperEncoder(
    whisperEncoderConfig({
      numMelBins: size.melBins,
      dModel: size.encoderHidden,
      numLayers: size.encoderLayers,
      numHeads: size.encoderHeads,
      ffnDim: size.encoderFfn,
      maxSourcePositions: Math.ceil(size.window / 2),
    }),
  );
  return audioModality({
    encoder,
    windows: { window: size.window, hop: size.hop, maxWindows: size.maxWindows },
    pool: size.pool,
    windowEncoder: { layers: size.windowLayers, heads: size.encoderHeads, ffnDim: size.encoderFfn, maxWindows: size.maxWindows },
  });
}

/** Audio Flamingo: Perceiver + zero-gated cross-attention before every `xattnEvery`-th LLM layer. */
export function composeFlamingo(llm: CausalLM, audio: AudioModality, size: AudioFlamingoSize, seed: number): ComposedModel {
  manualSeed(seed);
  return compose({
    backbone: llm,
    modalities: { audio },
    fusion: {
      audio: gatedCrossAttention({
        layers: { every: size.xattnEvery },
        mode: 'latest',
        resampler: {
          type: 'perceiver',
          numLatents: size.latents,
          depth: size.perceiverDepth,
          heads: size.perceiverHeads,
          headDim: size.perceiverHeadDim,
          // Flamingo's time embeddings: one per encoder token of the longest clip, so the latents know *when* (order, sweeps).
          mediaPositions: size.maxWindows * Math.floor(Math.ceil(size.window / 2) / size.pool),
        },
      }),
    },
    placeholders: { audio: AUDIO },
  });
}

/** Early fusion: the pooled encoder tokens, projected by a 2-layer MLP, spliced at `<audio>`. */
export function composeEarly(llm: CausalLM, audio: AudioModality, seed: number): ComposedModel {
  manualSeed(seed);
  return compose({
    backbone: llm,
    modalities: { audio },
    fusion: { audio: earlyFusion({ projector: 'mlp2x_gelu' }) },
    placeholders: { audio: AUDIO },
  });
}
