/**
 * The audio plugin with its encoder's output remembered per clip. Both recipes keep the encoder (and window
 * encoder) frozen, so a clip's features never change: computing them once per prepared clip instead of on every
 * training step removes most of a fusion step's cost. The wrapper is the same plugin (same name, module, prepare,
 * tokensFor) with a memoising encode; it refuses to run while any encoder parameter is trainable, since
 * remembered features would then be stale.
 */
import * as tf from '@tensorflow/tfjs';
import type { EncodeOptions, EncodedFeatures } from '@chimera/core';
import type { AudioModality, PreparedAudio } from '@chimera/audio-encoder';

export function withFrozenFeatures(audio: AudioModality): AudioModality {
  const inner = audio.continuousIn!;
  const memory = new WeakMap<PreparedAudio, { values: Float32Array; rows: number }>();
  const encode = (items: PreparedAudio[], options: EncodeOptions = {}): EncodedFeatures => {
    if (options.taps?.length) return inner.encode(items, options);
    const trainable = audio.module.trainableVariables().length;
    if (trainable > 0) {
      throw new Error(
        `withFrozenFeatures: ${trainable} audio encoder parameters are trainable, so remembered features would be stale; ` +
          "freeze the encoder (e.g. model.trainOnly('fusion')) or use the plain plugin",
      );
    }
    const missing = [...new Set(items.filter((item) => !memory.has(item)))];
    for (let start = 0; start < missing.length; start += 32) {
      const batch = missing.slice(start, start + 32);
      const encoded = inner.encode(batch);
      const features = encoded.features as tf.Tensor[];
      batch.forEach((item, k) => memory.set(item, { values: features[k]!.dataSync() as Float32Array, rows: features[k]!.shape[0]! }));
      tf.dispose(features);
    }
    return {
      features: items.map((item) => {
        const { values, rows } = memory.get(item)!;
        return tf.tensor2d(values, [rows, inner.featureDim]);
      }),
      tokensPerItem: items.map((item) => audio.tokensFor(item)),
      grids: items.map((item) => audio.gridFor!(item)),
    };
  };
  return { ...audio, continuousIn: { ...inner, encode } };
}
