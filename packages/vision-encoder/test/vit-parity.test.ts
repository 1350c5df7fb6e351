// Parity of VisionTransformer + loadHFVisionTower with PyTorch CLIP / SigLIP vision towers built from the math in
// HF's layout (test/reference/clip_vision_reference.py), including bicubic-interpolated positions.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensors } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, torchAvailable, runTorchScript, expectNoLeaks } from '@chimera/core/testing';
import { loadHFVisionTower, exportHFVisionTower } from '../src/vit/hf-import';
import type { VisionTransformer } from '../src/vit/tower';

interface Stored {
  shape: number[];
  data: number[];
}

interface ReferenceCase {
  name: string;
  dir: 'clip' | 'siglip';
  pixels: Stored;
  /** By HF hidden_states index ('0', '2', '-2', '-1'). */
  states: Record<string, Stored>;
  last_hidden_state: Stored;
  pooler_output?: Stored;
}

interface Reference {
  torch: string;
  num_layers: number;
  cases: ReferenceCase[];
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/clip_vision_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

function maxAbsDiff(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  return expected.data.reduce((m, e, i) => Math.max(m, Math.abs(values[i]! - e)), 0);
}

describe.skipIf(!hasTorch)('ViT parity with PyTorch CLIP / SigLIP vision towers', () => {
  let reference: Reference;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-vit-'));
    const path = runTorchScript(script, [dir]).trim();
    reference = JSON.parse(readFileSync(path, 'utf8')) as Reference;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the reference covers both families, interpolation and the chosen layers', () => {
    const names = reference.cases.map((c) => c.name).join(' | ');
    for (const feature of ['clip 32x32', 'clip 48x40 (interpolated', 'siglip 32x32', 'siglip 24x40 (interpolated']) {
      expect(names).toContain(feature);
    }
    for (const c of reference.cases) expect(Object.keys(c.states).sort()).toEqual(['-1', '-2', '0', '2']);
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    const towers: Partial<Record<'clip' | 'siglip' | 'llava', VisionTransformer>> = {};

    beforeAll(async () => {
      await setupTestBackend(backend);
      towers.clip = await loadHFVisionTower(join(dir, 'clip'));
      towers.siglip = await loadHFVisionTower(join(dir, 'siglip'));
      towers.llava = await loadHFVisionTower(join(dir, 'llava'), { family: 'clip' });
    });

    afterAll(() => {
      for (const t of Object.values(towers)) t?.dispose();
    });

    it('reads the configs (HF defaults fill what LLaVA leaves out) and families', () => {
      expect(towers.clip!.config).toMatchObject({ family: 'clip', clsToken: true, activation: 'quick_gelu', layerNormEps: 1e-5, numLayers: 4, numHeads: 4, imageSize: 32, patchSize: 8 });
      expect(towers.llava!.config).toEqual(towers.clip!.config);
      expect(towers.siglip!.config).toMatchObject({ family: 'siglip', clsToken: false, patchBias: true, preNorm: false, activation: 'gelu_tanh', layerNormEps: 1e-6 });
    });

    it('every chosen hidden state, the pooled and the final output match torch within 1e-4 (max abs)', () => {
      for (const c of reference.cases) {
        const tower = towers[c.dir]!;
        const indices = Object.keys(c.states).map(Number);
        const errors = tf.tidy(() => {
          const pixels = tf.tensor4d(c.pixels.data, c.pixels.shape as [number, number, number, number]);
          const out = tower.forward(pixels, { taps: indices });
          const found: Record<string, number> = {};
          indices.forEach((index, k) => (found[`hidden_states[${index}]`] = maxAbsDiff(out.taps[k]!, c.states[String(index)]!)));
          if (c.pooler_output) {
            // CLIP: HF's pooler_output is post_layernorm of the CLS token, i.e. token 0 of our final output; its
            // last_hidden_state is the un-normed last layer (tap -1).
            found.pooler_output = maxAbsDiff(tf.squeeze(tf.slice(out.hidden, [0, 0, 0], [-1, 1, -1]), [1]), c.pooler_output);
            found.last_hidden_state = maxAbsDiff(out.taps[indices.indexOf(-1)]!, c.last_hidden_state);
          } else {
            found.last_hidden_state = maxAbsDiff(out.hidden, c.last_hidden_state); // SigLIP: post-normed
          }
          return found;
        });
        for (const [what, error] of Object.entries(errors)) expect(error, `${c.name}: ${what} on ${backend}`).toBeLessThan(TOLERANCE);
      }
    });

    it('features() (the LLaVA path) equal the taps with CLS dropped, and the LLaVA checkpoint loads the same tower', () => {
      const c = reference.cases.find((x) => x.name.startsWith('clip 32x32'))!;
      tf.tidy(() => {
        const pixels = tf.tensor4d(c.pixels.data, c.pixels.shape as [number, number, number, number]);
        const { features, hasClsToken } = towers.llava!.features(pixels, { layers: -2 });
        expect(hasClsToken).toBe(false);
        const penultimate = c.states['-2']!;
        const [batch, length, dim] = penultimate.shape as [number, number, number];
        const withoutCls = tf.slice(tf.tensor(penultimate.data, penultimate.shape), [0, 1, 0], [batch, length - 1, dim]);
        expect(features.shape).toEqual([batch, length - 1, dim]);
        expect(tf.max(tf.abs(tf.sub(features, withoutCls))).dataSync()[0]).toBeLessThan(TOLERANCE);
      });
    });

    it('export writes the torch checkpoint back: same names and values for the vision tower', async () => {
      const out = join(dir, `export-${backend}`);
      await expectNoLeaks(() => exportHFVisionTower(towers.clip!, out), 'exportHFVisionTower');
      const written = await loadSafetensors(join(out, 'model.safetensors'));
      const original = await loadSafetensors(join(dir, 'clip', 'model.safetensors'));
      try {
        const expectedNames = Object.keys(original.tensors)
          .filter((n) => n.startsWith('vision_model.') && n !== 'vision_model.embeddings.position_ids')
          .sort();
        expect(Object.keys(written.tensors).sort()).toEqual(expectedNames);
        for (const name of expectedNames) {
          expect(written.tensors[name]!.shape, name).toEqual(original.tensors[name]!.shape);
          expect(Array.from(written.tensors[name]!.dataSync()), name).toEqual(Array.from(original.tensors[name]!.dataSync()));
        }
        const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
        expect(config).toMatchObject({ model_type: 'clip_vision_model', hidden_size: 32, num_attention_heads: 4, hidden_act: 'quick_gelu' });
      } finally {
        tf.dispose([...Object.values(written.tensors), ...Object.values(original.tensors)]);
      }
    });
  });
});
