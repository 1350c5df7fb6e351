/**
 * A Fourier start for the patch Linear. A shape's kind does not depend on where it sits in a patch, and the
 * power spectrum of a patch (|DFT|^2) does not change when its content shifts around the patch: on the task's
 * images a linear classifier over the power spectrum of a shape's patches, summed, tells the five kinds apart
 * 98% of the time after 600 steps (README, "How the kinds were found"). A SwiGLU computes such squares exactly
 * (silu(a) * a - silu(-a) * a = a^2), so when the patch Linear starts as low-frequency cosines and sines the
 * decoder's first MLP has the invariant features one product away; from a random start it found none in budget.
 *
 * Columns of the weight [patch * patch * 3, D]: first the mean of each colour channel (the colour), then cos and
 * sin of the lowest 2-D frequencies of the patch's luminance (the same weight on r, g and b), then zeros.
 */
import * as tf from '@tensorflow/tfjs';
import type { RawPatchEmbedding } from '@chimera/vision-encoder';

/** The lowest non-constant 2-D frequencies (u down, v across) of a patch, each once (v > 0, or v = 0 and u > 0). */
export function lowFrequencies(count: number, patchSize: number): [number, number][] {
  const all: [number, number][] = [];
  const half = Math.floor(patchSize / 2);
  for (let u = -half + 1; u <= half; u++) for (let v = 0; v <= half; v++) if (v > 0 || u > 0) all.push([u, v]);
  all.sort((a, b) => a[0] * a[0] + a[1] * a[1] - (b[0] * b[0] + b[1] * b[1]) || a[0] - b[0] || a[1] - b[1]);
  return all.slice(0, count);
}

/** The Fourier weight [patch * patch * channels, dim] (see the file comment). */
export function fourierWeight(patchSize: number, channels: number, dim: number): Float32Array {
  const inputs = patchSize * patchSize * channels;
  const weight = new Float32Array(inputs * dim);
  const scale = 1 / Math.sqrt(inputs);
  const at = (py: number, px: number, c: number) => ((py * patchSize + px) * channels + c) * dim;
  const colourColumns = Math.min(channels, dim);
  for (let c = 0; c < colourColumns; c++) {
    for (let py = 0; py < patchSize; py++) for (let px = 0; px < patchSize; px++) weight[at(py, px, c) + c] = scale * Math.sqrt(channels);
  }
  const frequencies = lowFrequencies(Math.floor((dim - colourColumns) / 2), patchSize);
  frequencies.forEach(([u, v], k) => {
    for (let py = 0; py < patchSize; py++) {
      for (let px = 0; px < patchSize; px++) {
        const phase = (2 * Math.PI * (u * py + v * px)) / patchSize;
        for (let c = 0; c < channels; c++) {
          weight[at(py, px, c) + colourColumns + 2 * k] = scale * Math.cos(phase);
          weight[at(py, px, c) + colourColumns + 2 * k + 1] = scale * Math.sin(phase);
        }
      }
    }
  });
  return weight;
}

/** Overwrites the embedding's projection weight with the Fourier start (the bias and the row break stay). */
export function fourierInit(embedding: RawPatchEmbedding): void {
  const { patchSize, channels, dim } = embedding;
  const values = tf.tensor2d(fourierWeight(patchSize, channels, dim), [patchSize * patchSize * channels, dim]);
  embedding.proj.weight.assign(values);
  values.dispose();
}
