/**
 * Resamplers turn a variable number of features per item into a fixed number of tokens (the Perceiver of
 * Flamingo, BLIP-2's Q-Former). `createResampler` builds one from a spec; `resampleItems` runs one over items of
 * possibly different feature counts, batching the items that agree.
 */
import * as tf from '@tensorflow/tfjs';
import type { ItemFeatures, Module } from '@chimera/core';
import { itemList } from '../item-features';
import { PerceiverResampler, type PerceiverOptions } from './perceiver';
import { QFormerResampler, type QFormerOptions } from './qformer';

/** features [B, N, inputDim] -> [B, numLatents, outputDim]. */
export type Resampler = Module & {
  /** Feature width in. */
  readonly inputDim: number;
  /** Width out. */
  readonly outputDim: number;
  /** Tokens per item after resampling. */
  readonly numLatents: number;
  /** features [B, N, inputDim] -> [B, numLatents, outputDim]; the caller owns the result. */
  forward(features: tf.Tensor): tf.Tensor;
};

/**
 * A Perceiver or Q-Former with its options (`{ type: 'perceiver', numLatents: 64 }`), or a factory building a
 * Resampler for the input width.
 */
export type ResamplerSpec =
  | ({ type: 'perceiver' } & PerceiverOptions)
  | ({ type: 'qformer' } & QFormerOptions)
  | ((inputDim: number) => Resampler);

/** Builds the resampler a {@link ResamplerSpec} describes for features of width `inputDim`. */
export function createResampler(spec: ResamplerSpec, inputDim: number): Resampler {
  if (typeof spec === 'function') {
    const resampler = spec(inputDim);
    if (resampler.inputDim !== inputDim) {
      throw new Error(`the resampler factory built a resampler for width ${resampler.inputDim}, but the features have width ${inputDim}`);
    }
    return resampler;
  }
  if (spec?.type === 'perceiver') return new PerceiverResampler(inputDim, spec);
  if (spec?.type === 'qformer') return new QFormerResampler(inputDim, spec);
  throw new Error(
    `resampler ${JSON.stringify(spec)} is unknown; use { type: 'perceiver', ... } (Flamingo), { type: 'qformer', ... } ` +
      '(BLIP-2) or a factory (inputDim) => Resampler',
  );
}

/** Per-item features ([N_i, D] each, or [items, N, D]) -> one [numLatents, outputDim] tensor per item, in order. */
export function resampleItems(resampler: Resampler, features: ItemFeatures): tf.Tensor2D[] {
  return tf.tidy(() => {
    if (!Array.isArray(features)) return itemList(resampler.forward(features)) as tf.Tensor2D[];
    const out: tf.Tensor2D[] = new Array(features.length);
    const bySize = new Map<number, number[]>();
    features.forEach((f, i) => {
      if (f.rank !== 2) throw new Error(`resampler: item ${i} has features of shape [${f.shape}], expected [N, D]`);
      bySize.set(f.shape[0]!, [...(bySize.get(f.shape[0]!) ?? []), i]);
    });
    for (const indices of bySize.values()) {
      const resampled = itemList(resampler.forward(tf.stack(indices.map((i) => features[i]!))));
      indices.forEach((i, k) => (out[i] = resampled[k] as tf.Tensor2D));
    }
    return out;
  });
}
