// Parity of the fusion building blocks with an independent float64 PyTorch implementation of their math
// (test/reference/fusion_reference.py): the Perceiver resampler, the simplified Q-Former, the gated XATTN-DENSE
// block (LayerNorm / Flamingo and RMSNorm + masked feed-forward / Llama 3.2), and the mlp2x_gelu projector.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Module } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaksSync, runTorchScript, setupTestBackend, torchAvailable } from '@chimera/core/testing';
import type { BlockContext } from '@chimera/llm';
import { GatedCrossAttentionBlock } from '../src/blocks/gated-cross-attention';
import { MLPProjector } from '../src/projectors/mlp';
import { PerceiverResampler } from '../src/resamplers/perceiver';
import { QFormerResampler } from '../src/resamplers/qformer';

interface Stored {
  shape: number[];
  data: number[];
}

interface ReferenceCase {
  name: string;
  options: Record<string, number | string | boolean>;
  weights: Record<string, Stored>;
  inputs: Record<string, Stored>;
  output: Stored;
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/fusion_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

function tensorOf(stored: Stored): tf.Tensor {
  return tf.tensor(stored.data, stored.shape, 'float32');
}

function load(module: Module, weights: Record<string, Stored>): void {
  const state = Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, tensorOf(v)]));
  try {
    module.loadStateDict(state); // strict: every parameter must come from the reference
  } finally {
    tf.dispose(Object.values(state));
  }
}

function maxAbsDiff(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  return expected.data.reduce((m, e, i) => Math.max(m, Math.abs(values[i]! - e)), 0);
}

function blockContext(key: string, entry: Record<string, tf.Tensor>, length: number): BlockContext {
  return {
    layer: 0,
    position: 'before',
    context: { [key]: entry },
    tokenModality: null,
    positions: tf.zeros([1, length], 'int32'),
    paddingMask: null,
    attentionBias: null,
    cache: null,
    pastLength: 0,
    training: false,
  };
}

describe.skipIf(!hasTorch)('fusion blocks match the PyTorch reference', () => {
  let cases: Map<string, ReferenceCase>;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-fusion-'));
    const path = runTorchScript(script, [dir]).trim();
    const reference = JSON.parse(readFileSync(path, 'utf8')) as { cases: ReferenceCase[] };
    cases = new Map(reference.cases.map((c) => [c.name, c]));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    beforeAll(() => setupTestBackend(backend));

    it('Perceiver resampler (latents attend to features and themselves)', () => {
      const c = cases.get('perceiver')!;
      const o = c.options as Record<string, number>;
      const perceiver = new PerceiverResampler(o.dim!, { numLatents: o.numLatents, depth: o.depth, heads: o.heads, headDim: o.headDim, ffMult: o.ffMult });
      load(perceiver, c.weights);
      const features = tensorOf(c.inputs.features!);
      const out = expectNoLeaksSync(() => perceiver.forward(features), 'perceiver forward');
      expect(maxAbsDiff(out, c.output)).toBeLessThan(TOLERANCE);
      tf.dispose([out, features]);
      perceiver.dispose();
    });

    it('Q-Former resampler (self-attention, cross-attention, feed-forward per layer)', () => {
      const c = cases.get('qformer')!;
      const o = c.options as Record<string, number>;
      const qformer = new QFormerResampler(o.featureDim!, { dim: o.dim, numQueries: o.numQueries, depth: o.depth, heads: o.heads, ffMult: o.ffMult });
      load(qformer, c.weights);
      const features = tensorOf(c.inputs.features!);
      const out = expectNoLeaksSync(() => qformer.forward(features), 'qformer forward');
      expect(out.shape).toEqual([2, o.numQueries, o.dim]);
      expect(maxAbsDiff(out, c.output)).toBeLessThan(TOLERANCE);
      tf.dispose([out, features]);
      qformer.dispose();
    });

    it.each(['xattn', 'xattn_rms'])('gated XATTN-DENSE block (%s)', (name) => {
      const c = cases.get(name)!;
      const o = c.options;
      const block = new GatedCrossAttentionBlock({
        dim: o.dim as number,
        kvDim: o.kvDim as number,
        numHeads: o.numHeads as number,
        numKvHeads: o.numKvHeads as number,
        headDim: o.headDim as number,
        ffMult: o.ffMult as number,
        norm: o.norm as 'layer' | 'rms',
        maskFeedForward: o.maskFeedForward as boolean,
        contextKey: 'media',
        cacheSlot: 0,
      });
      load(block, c.weights);
      const hidden = tensorOf(c.inputs.hidden!);
      const entry = { media: tensorOf(c.inputs.media!), bias: tensorOf(c.inputs.bias!), hasMedia: tensorOf(c.inputs.hasMedia!) };
      const ctx = blockContext('media', entry, hidden.shape[1]!);
      const out = expectNoLeaksSync(() => block.forward(hidden, ctx), 'block forward');
      expect(maxAbsDiff(out, c.output)).toBeLessThan(TOLERANCE);
      tf.dispose([out, hidden, ctx.positions, ...Object.values(entry)]);
      block.dispose();
    });

    it('mlp2x_gelu projector (Linear, exact GELU, Linear)', () => {
      const c = cases.get('mlp2x_gelu')!;
      const projector = new MLPProjector(6, 8, 2);
      load(projector, c.weights);
      const features = tensorOf(c.inputs.features!);
      const out = projector.forward(features);
      expect(maxAbsDiff(out, c.output)).toBeLessThan(TOLERANCE);
      tf.dispose([out, features]);
      projector.dispose();
    });
  });
});
