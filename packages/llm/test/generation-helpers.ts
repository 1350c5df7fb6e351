// Shared helpers for the generation tests: a tiny model with decisive logits and a float64 greedy reference.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@chimera/core/testing';
import { CausalLM } from '../src/model/causal-lm';
import type { LlamaConfig } from '../src/config';
import { referenceLogits, type ReferenceRouting } from './model-helpers';

/**
 * Re-draws every parameter with unit-scale statistics (embeddings N(0, 1), matrices N(0, 1/in), norms in
 * [0.6, 1.4]). The default 0.02 init gives near-uniform logits and a model that repeats one token; these weights
 * give varied, well-separated greedy choices, so position or mask bugs change the tokens.
 */
export function sharpen(model: CausalLM, seed: number): CausalLM {
  const rng = new Rng(seed);
  for (const [name, v] of model.namedParameters()) {
    const isNorm = /norm\.weight$/.test(name);
    const scale = name.includes('embed_tokens') ? 1 : v.shape.length === 2 ? 1 / Math.sqrt(v.shape[0]!) : 0.1;
    const values = Array.from({ length: v.size }, () => (isNorm ? 0.6 + 0.8 * rng.next() : scale * rng.normal()));
    v.assign(tf.tensor(values, v.shape));
  }
  return model;
}

export function sharpModel(config: LlamaConfig, seed = 11): CausalLM {
  return sharpen(new CausalLM(config), seed);
}

/**
 * Greedy decoding of one unpadded prompt from float64 reference logits (no tfjs, no cache): each step re-runs the
 * whole sequence at positions 0..n-1. Generated tokens are text (modality 0) when `promptModality` is given.
 */
export function referenceGreedy(
  model: CausalLM,
  prompt: readonly number[],
  steps: number,
  routing?: { promptModality: number[]; mode: ReferenceRouting['mode'] },
): number[] {
  const sequence = [...prompt];
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const modality = routing ? [[...routing.promptModality, ...new Array<number>(out.length).fill(0)]] : undefined;
    const logits = referenceLogits(model, [sequence], modality ? { tokenModality: modality, mode: routing!.mode } : undefined)[0]!;
    const last = logits[logits.length - 1]!;
    const next = last.indexOf(Math.max(...last));
    out.push(next);
    sequence.push(next);
  }
  return out;
}

/** Prompts of different lengths with ids drawn from [low, vocab). */
export function promptsOfLengths(lengths: readonly number[], vocab: number, seed: number, low = 0): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => low + rng.nextInt(vocab - low)));
}
