// The audio plugin composed with a tiny LLM in both fusion families of @chimera/fusion, unchanged:
// - early fusion (Audio Flamingo 3 / Qwen-Audio): pooled encoder tokens spliced at <audio> placeholders; the
//   spliced rows equal projector(encode(item)) and text-only batches give exactly the LLM's logits;
// - Perceiver + gated cross-attention (Audio Flamingo): windows and a window encoder; zero gates reproduce the
//   LLM exactly (and open gates do not), the encoder is frozen by the usual glob;
// both with shapes, padding masks, a gradient step reaching the trainable parts, and no leaked tensors.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { manualSeed } from '@chimera/core';
import { Rng, TEST_BACKENDS, expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import { CausalLM, tinyLlama } from '@chimera/llm';
import { compose, earlyFusion, gatedCrossAttention, type ComposedModel, type ComposedSample } from '@chimera/fusion';
import type { CausalLMInputs } from '@chimera/llm';
import { audioModality, type LogMelInput } from '../src/modality';
import { WhisperEncoder } from '../src/encoder/encoder';
import { tinyWhisperEncoder } from '../src/encoder/config';

const VOCAB = 32;
const AUDIO_ID = 30;
const BOS = 1;
const PERCEIVER = { type: 'perceiver', numLatents: 4, depth: 1, heads: 2, headDim: 8, ffMult: 2 } as const;

function backbone(): CausalLM {
  return new CausalLM(tinyLlama({ vocabSize: VOCAB, hiddenSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 32 }));
}

function clip(frames: number, seed: number): LogMelInput {
  const rng = new Rng(seed);
  return { features: Float32Array.from({ length: frames * 8 }, () => 2 * rng.next() - 1), frames, melBins: 8 };
}

function exactlyEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const x = a.dataSync();
  const y = b.dataSync();
  return x.every((v, i) => v === y[i]);
}

/** Logits of the plain LLM on the composed batch's ids (placeholders included), masked like the batch. */
function plainLogits(plain: CausalLM, model: ComposedModel, samples: ComposedSample[], paddingMask: tf.Tensor): tf.Tensor {
  const { inputIds, batchSize, length } = model.layout(samples);
  return tf.tidy(() => plain.forward({ inputIds: tf.tensor2d(inputIds, [batchSize, length], 'int32'), paddingMask }).logits);
}

function copyOf(llm: CausalLM): CausalLM {
  const plain = new CausalLM(llm.config);
  plain.loadStateDict(llm.stateDict());
  return plain;
}

/** One gradient of the composed loss over the trainable variables; returns the names that got a non-zero gradient. */
function gradientStep(model: ComposedModel, samples: ComposedSample[]): string[] {
  const named = model.namedParameters().filter(([, v]) => v.trainable);
  const { value, grads } = tf.variableGrads(() => model.loss(samples), named.map(([, v]) => v));
  expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
  const moved = named.filter(([, v]) => tf.tidy(() => tf.max(tf.abs(grads[v.name]!)).dataSync()[0]!) > 0).map(([n]) => n);
  tf.dispose([value, ...Object.values(grads)]);
  return moved;
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('early fusion: pooled tokens spliced at <audio> placeholders; text-only logits equal the LLM; grads; no leaks', async () => {
    manualSeed(11);
    const llm = backbone();
    const plain = copyOf(llm);
    const audio = audioModality({ encoder: new WhisperEncoder(tinyWhisperEncoder()), pool: 2 });
    const model = compose({ backbone: llm, modalities: { audio }, fusion: { audio: earlyFusion({ projector: 'linear' }) }, placeholders: { audio: AUDIO_ID } });
    const a = audio.prepare(clip(30, 1)); // 15 positions -> 7 tokens
    const b = audio.prepare(clip(13, 2)); // 7 -> 3
    const samples: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'audio', item: a }, { text: [6, 7] }],
      [{ text: [BOS] }, { modality: 'audio', item: b }, { text: [9] }],
    ];
    const layout = model.layout(samples);
    expect(layout.rowLengths).toEqual([2 + 7 + 2, 1 + 3 + 1]);
    const audioPositions = (row: number) => Array.from(layout.inputIds.slice(row * layout.length, (row + 1) * layout.length)).filter((id) => id === AUDIO_ID).length;
    expect([audioPositions(0), audioPositions(1)]).toEqual([7, 3]);

    // The rows the backbone receives at the placeholders are the projected features.
    const decoder = model.llm.model;
    const forward = decoder.forward.bind(decoder);
    let embeds: number[][][] | null = null;
    decoder.forward = (inputs: CausalLMInputs, options) => {
      embeds = (inputs.inputsEmbeds?.arraySync() as number[][][]) ?? null;
      return forward(inputs, options);
    };
    await expectNoLeaks(() => {
      const out = model.forward(samples);
      expect(out.logits.shape).toEqual([2, 11, VOCAB]);
      expect(Array.from(out.paddingMask.dataSync())).toEqual([...new Array(11).fill(1), ...new Array(5).fill(1), ...new Array(6).fill(0)]);
      tf.dispose(out);
    });
    decoder.forward = forward;
    const state = model.stateDict();
    const expected = tf.tidy(() => {
      const [features] = audio.continuousIn.encode([a]).features as tf.Tensor2D[];
      return tf.add(tf.matMul(features!, state['audio.projector.linear_1.weight'] as tf.Tensor2D), state['audio.projector.linear_1.bias']!).arraySync() as number[][];
    });
    const spliced = embeds!.at(0)!.slice(2, 9);
    const gap = Math.max(...spliced.flatMap((row, i) => row.map((v, j) => Math.abs(v - expected[i]![j]!))));
    expect(gap).toBeLessThan(1e-5);

    const textOnly: ComposedSample[] = [[{ text: [BOS, 5, 6] }], [{ text: [BOS, 7] }]];
    const out = model.forward(textOnly);
    const reference = plainLogits(plain, model, textOnly, out.paddingMask);
    expect(exactlyEqual(out.logits, reference)).toBe(true);
    tf.dispose([out, reference]);

    // Train projector only (LLaVA stage 1): the gradient reaches it and nothing frozen.
    model.freeze('**');
    model.unfreeze('audio.projector.**');
    await expectNoLeaks(() => {
      expect(gradientStep(model, samples).sort()).toEqual(['audio.projector.linear_1.bias', 'audio.projector.linear_1.weight']);
    });
    model.dispose();
    plain.dispose();
  });

  it('cross-attention: windows + window encoder + Perceiver; zero gates give the LLM exactly, open gates do not; no leaks', async () => {
    manualSeed(12);
    const llm = backbone();
    const plain = copyOf(llm);
    const audio = audioModality({
      encoder: new WhisperEncoder(tinyWhisperEncoder()),
      windows: { window: 16, hop: 8, maxWindows: 4 },
      windowEncoder: { layers: 1, heads: 2 },
    });
    const model = compose({
      backbone: llm,
      modalities: { audio },
      fusion: { audio: gatedCrossAttention({ layers: 'all', resampler: PERCEIVER }) },
      placeholders: { audio: AUDIO_ID },
    });
    const groups = model.parameterGroups().map((g) => g.name);
    expect(groups).toContain('audio.encoder');
    expect(groups).toContain('audio.xattn');
    expect(model.namedParameters().some(([n]) => n.startsWith('audio.window_encoder.'))).toBe(true);
    const long = audio.prepare(clip(40, 3)); // 4 windows
    const short = audio.prepare(clip(10, 4)); // 1 padded window
    expect(long.windows!.lengths).toEqual([16, 16, 16, 16]);
    const samples: ComposedSample[] = [
      [{ text: [BOS, 5] }, { modality: 'audio', item: long }, { text: [6, 7, 8] }],
      [{ modality: 'audio', item: short }, { text: [3, 2] }],
      [{ text: [BOS, 4, 4] }],
    ];
    await expectNoLeaks(() => {
      const out = model.forward(samples);
      const layout = model.layout(samples);
      expect(out.logits.shape).toEqual([3, layout.length, VOCAB]);
      const reference = plainLogits(plain, model, samples, out.paddingMask);
      expect(exactlyEqual(out.logits, reference)).toBe(true);
      tf.dispose([out, reference]);
    });
    // The check can fail: with open gates the logits after the audio differ.
    for (const [name, v] of model.namedParameters()) if (/_gate$/.test(name)) tf.tidy(() => v.assign(tf.fill(v.shape, 0.7)));
    const out = model.forward(samples);
    const reference = plainLogits(plain, model, samples, out.paddingMask);
    expect(exactlyEqual(out.logits, reference)).toBe(false);
    tf.dispose([out, reference]);

    // Audio Flamingo trains the fusion parts over a frozen encoder and LLM.
    model.freeze('llm.**');
    model.unfreeze('llm.model.inserted.**'); // the gated cross-attention blocks
    model.freeze('audio.encoder.**');
    await expectNoLeaks(() => {
      const moved = gradientStep(model, samples);
      expect(moved.some((n) => n.startsWith('audio.window_encoder.'))).toBe(true);
      expect(moved.some((n) => n.includes('xattn'))).toBe(true);
      expect(moved.some((n) => n.startsWith('audio.encoder.') || (n.startsWith('llm.') && !n.includes('inserted')))).toBe(false);
    });
    model.dispose();
    plain.dispose();
  });
});
