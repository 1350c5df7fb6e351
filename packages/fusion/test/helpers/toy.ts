// Test helpers: a tiny backbone, a toy "class" modality whose features encode a class, a tiny ViT image plugin,
// and exact-comparison utilities.
import * as tf from '@tensorflow/tfjs';
import { Linear, ModalityModule, type Modality } from '@chimera/core';
import { Rng } from '@chimera/core/testing';
import { CausalLM, tinyLlama, type LlamaConfig } from '@chimera/llm';
import { VisionTransformer, tinyViT, visionModality, type RgbImage } from '@chimera/vision-encoder';

export const VOCAB = 32;
/** Placeholder ids used across tests. */
export const IMAGE_ID = 30;
export const TOY_ID = 31;
export const BOS = 1;

export function tinyBackbone(overrides: Partial<LlamaConfig> = {}): CausalLM {
  return new CausalLM(
    tinyLlama({ vocabSize: VOCAB, hiddenSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 32, ...overrides }),
  );
}

/** Raw width of a toy token before the encoder. */
export const RAW = 6;

export interface ToyRaw {
  cls: number;
  /** Positions (features) the item takes (default 3). */
  tokens?: number;
  seed?: number;
  /** Noise amplitude (default 0.1). */
  noise?: number;
}

export interface ToyItem {
  cls: number;
  tokens: number;
  values: Float32Array; // [tokens, RAW]
}

export type ToyModality = Modality<ToyRaw, ToyItem> & { readonly encoder: Linear; readonly module: ModalityModule };

/**
 * A modality whose items are classes: every token of an item is the class's fixed pattern plus noise, through a
 * Linear encoder. Broken plugins for the error tests: `extraFeatures` makes encode emit that many more features
 * than tokensFor says; `declaredFeatureDim` declares a featureDim other than the encoder's width.
 */
export function toyModality(
  options: { name?: string; featureDim?: number; extraFeatures?: number; declaredFeatureDim?: number } = {},
): ToyModality {
  const name = options.name ?? 'toy';
  const featureDim = options.featureDim ?? 8;
  const extra = options.extraFeatures ?? 0;
  const encoder = new Linear(RAW, featureDim);
  const patterns = Array.from({ length: 8 }, (_, c) => Array.from({ length: RAW }, (_, j) => Math.sin(1.7 * (c + 1) * (j + 1)) * 1.5));
  return {
    name,
    encoder,
    module: new ModalityModule({ encoder }),
    prepare(raw: ToyRaw): ToyItem {
      const tokens = raw.tokens ?? 3;
      const rng = new Rng(raw.seed ?? 0);
      const noise = raw.noise ?? 0.1;
      const values = new Float32Array(tokens * RAW);
      for (let t = 0; t < tokens; t++) {
        for (let j = 0; j < RAW; j++) values[t * RAW + j] = patterns[raw.cls]![j]! + noise * (2 * rng.next() - 1) + 0.05 * t;
      }
      return { cls: raw.cls, tokens, values };
    },
    tokensFor: (item) => item.tokens,
    continuousIn: {
      featureDim: options.declaredFeatureDim ?? featureDim,
      encode(items) {
        const features = items.map((item) =>
          tf.tidy(() => {
            const rows = item.tokens + extra;
            const values = new Float32Array(rows * RAW);
            values.set(item.values.subarray(0, Math.min(item.values.length, rows * RAW)));
            return encoder.forward(tf.tensor2d(values, [rows, RAW]));
          }),
        );
        return { features, tokensPerItem: items.map((item) => item.tokens) };
      },
    },
  };
}

/** A tiny ViT image plugin ('vit' mode, 16x16 images, 4x4 patches -> 16 tokens of width 16). */
export function tinyImageModality(name = 'image') {
  return visionModality({ mode: 'vit', name, encoder: new VisionTransformer(tinyViT()), layers: 'final' });
}

/** A 16x16 image with a colour gradient determined by `seed`. */
export function testImage(seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(16 * 16 * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(256 * rng.next());
  return { data, width: 16, height: 16 };
}

/** Exact equality of every element (the "bitwise" identity tests). */
export function exactlyEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = a.dataSync();
  const y = b.dataSync();
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Every parameter's values by name (copies). */
export function snapshot(module: { namedParameters(): [string, tf.Variable][] }): Map<string, Float32Array> {
  return new Map(module.namedParameters().map(([n, v]) => [n, v.dataSync().slice() as Float32Array]));
}

export function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Sets every gate (`attn_gate`, `ff_gate`) to `value`, so a cross-attention model differs from its LLM. */
export function openGates(module: { namedParameters(): [string, tf.Variable][] }, value = 0.7): void {
  for (const [name, v] of module.namedParameters()) {
    if (/_gate$/.test(name)) tf.tidy(() => v.assign(tf.fill(v.shape, value)));
  }
}
