// Parity of WhisperEncoder + loadHFWhisperEncoder with a PyTorch Whisper encoder written in HF's layout
// (test/reference/whisper_encoder_reference.py): outputs and every hidden state within 1e-4, the 2x-pooled output
// (Audio Flamingo 3), gradients of the features and of three weights within 1e-4 relative, and the export reloaded
// by PyTorch with strict keys. Plus the loader's errors and the sinusoid table against the saved one.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensors, saveSafetensors } from '@chimera/core';
import { TEST_BACKENDS, expectNoLeaks, runTorchScript, setupTestBackend, torchAvailable } from '@chimera/core/testing';
import { exportHFWhisperEncoder, hfWhisperStateDict, loadHFWhisperEncoder, whisperEncoderConfigFromHF } from '../src/encoder/hf-import';
import { whisperSinusoids } from '../src/encoder/positions';
import type { WhisperEncoder } from '../src/encoder/encoder';

interface Stored {
  shape: number[];
  data: number[];
}

interface ReferenceCase {
  name: string;
  features: Stored;
  states: Record<string, Stored>;
  output: Stored;
  pooled: Stored;
  loss_weight: Stored;
  grad_features: Stored;
  grads: Record<string, Stored>;
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/whisper_encoder_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

const tensorOf = (s: Stored) => tf.tensor(s.data, s.shape);

function maxAbsDiff(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  return expected.data.reduce((m, e, i) => Math.max(m, Math.abs(values[i]! - e)), 0);
}

/** max |got - expected| / max |expected|. */
function relativeError(got: tf.Tensor, expected: Stored): number {
  const scale = expected.data.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
  return maxAbsDiff(got, expected) / scale;
}

describe.skipIf(!hasTorch)('Whisper encoder parity with a PyTorch reference in HF layout', () => {
  let dir: string;
  let cases: ReferenceCase[];
  let sinusoidRows: { rows: number[]; channels: number; data: number[] };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-whisper-'));
    const path = runTorchScript(script, ['make', dir]).trim();
    const reference = JSON.parse(readFileSync(path, 'utf8')) as { cases: ReferenceCase[]; sinusoid_rows: typeof sinusoidRows };
    cases = reference.cases;
    sinusoidRows = reference.sinusoid_rows;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the reference has the cases this file checks', () => {
    expect(cases.map((c) => c.name)).toEqual(['tiny', 'mels80']);
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    beforeAll(() => setupTestBackend(backend));

    it('loads (decoder tensors ignored) and matches outputs, every hidden state and the pooled output within 1e-4', async () => {
      for (const c of cases) {
        const encoder = await loadHFWhisperEncoder(join(dir, c.name));
        const features = tensorOf(c.features) as tf.Tensor3D;
        await expectNoLeaks(() => {
          const taps = Object.keys(c.states).map(Number);
          const out = encoder.forward(features, { taps });
          expect(maxAbsDiff(out.hidden, c.output)).toBeLessThan(TOLERANCE);
          taps.forEach((t, k) => expect(maxAbsDiff(out.taps[k]!, c.states[String(t)]!), `${c.name} state ${t}`).toBeLessThan(TOLERANCE));
          const pooled = encoder.forward(features, { pool: 2 });
          expect(maxAbsDiff(pooled.hidden, c.pooled)).toBeLessThan(TOLERANCE);
          tf.dispose([out.hidden, ...out.taps, pooled.hidden]);
        });
        features.dispose();
        encoder.dispose();
      }
    });

    it('gradients of the features and of conv1, a q_proj and an fc2 bias match within 1e-4 relative', async () => {
      for (const c of cases) {
        const encoder = await loadHFWhisperEncoder(join(dir, c.name));
        const features = tensorOf(c.features) as tf.Tensor3D;
        const weight = tensorOf(c.loss_weight);
        const loss = (x: tf.Tensor3D) => tf.sum(tf.mul(encoder.forward(x).hidden, weight)) as tf.Scalar;
        const [gradFeatures] = tf.grads((x: tf.Tensor) => loss(x as tf.Tensor3D))([features]);
        expect(relativeError(gradFeatures!, c.grad_features)).toBeLessThan(TOLERANCE);
        const state = encoder.stateDict();
        const names = Object.keys(c.grads);
        const lastLayer = encoder.config.numLayers - 1;
        expect(names).toEqual(['conv1.weight', 'layers.0.self_attn.q_proj.weight', `layers.${lastLayer}.fc2.bias`]);
        const vars = names.map((n) => state[n] as tf.Variable);
        const { grads } = tf.variableGrads(() => loss(features), vars);
        // Chimera layouts: conv1d [k, in, out] and Linear [in, out]; PyTorch's [out, in, k] and [out, in].
        const torchLayout = [
          tf.transpose(grads[vars[0]!.name]!, [2, 1, 0]),
          tf.transpose(grads[vars[1]!.name]!),
          grads[vars[2]!.name]!,
        ];
        torchLayout.forEach((g, k) => expect(relativeError(g, c.grads[names[k]!]!), `${c.name} ${names[k]}`).toBeLessThan(TOLERANCE));
        tf.dispose([gradFeatures!, ...Object.values(grads), ...torchLayout, features, weight]);
        encoder.dispose();
      }
    });
  });

  it('the computed sinusoid table equals the one PyTorch saved, and Whisper-tiny\'s 1500 x 384 one', async () => {
    setupTestBackend('cpu');
    for (const c of cases) {
      const { tensors } = await loadSafetensors(join(dir, c.name, 'model.safetensors'));
      const saved = tensors['model.encoder.embed_positions.weight']!;
      const [length, channels] = saved.shape as [number, number];
      const ours = tf.tensor2d(whisperSinusoids(length, channels), [length, channels]);
      expect(maxAbsDiff(ours, { shape: saved.shape, data: Array.from(saved.dataSync()) })).toBeLessThan(1e-5);
      tf.dispose([ours, ...Object.values(tensors)]);
    }
    // Whisper-tiny's 1500 x 384 table, rows up to the last: angles reach 1499 rad, where float32's spacing is 1.2e-4, so
    // a 1-ulp difference in PyTorch's float32 exp moves sin/cos by up to that much.
    const { rows, channels, data } = sinusoidRows;
    const table = whisperSinusoids(1500, channels);
    let gap = 0;
    rows.forEach((row, k) => {
      for (let c = 0; c < channels; c++) gap = Math.max(gap, Math.abs(table[row * channels + c]! - data[k * channels + c]!));
    });
    expect(gap).toBeLessThan(2e-4);
  });

  it('exports back to HF layout; PyTorch reloads it with strict keys and gives the same output', async () => {
    setupTestBackend('cpu');
    for (const c of cases) {
      const encoder = await loadHFWhisperEncoder(join(dir, c.name));
      const out = join(dir, `export-${c.name}`);
      await exportHFWhisperEncoder(encoder, out);
      const result = JSON.parse(runTorchScript(script, ['check', dir, c.name, out]).trim()) as {
        max_abs_diff: number;
        config_matches: boolean;
      };
      expect(result.max_abs_diff).toBeLessThan(TOLERANCE);
      expect(result.config_matches).toBe(true);
      // And Chimera reloads its own export to the same weights.
      const again = await loadHFWhisperEncoder(out);
      const a = encoder.stateDict();
      const b = again.stateDict();
      for (const key of Object.keys(a)) expect(tf.tidy(() => tf.max(tf.abs(tf.sub(a[key]!, b[key]!))).dataSync()[0])).toBe(0);
      encoder.dispose();
      again.dispose();
    }
  });

  it('loads from a bare .safetensors without config.json given numHeads, and says so when it is missing', async () => {
    setupTestBackend('cpu');
    const bare = join(dir, 'bare');
    const encoder = await loadHFWhisperEncoder(join(dir, 'tiny'));
    const state = hfWhisperStateDict(encoder, { prefix: 'audio_tower.' });
    await saveSafetensors(join(bare + '.safetensors'), state);
    tf.dispose(Object.values(state));
    await expect(loadHFWhisperEncoder(bare + '.safetensors')).rejects.toThrow(/no config.json.*pass options.config.numHeads/);
    const inferred = await loadHFWhisperEncoder(bare + '.safetensors', { config: { numHeads: 4 } });
    expect(inferred.config).toEqual(encoder.config);
    encoder.dispose();
    inferred.dispose();
  });
});

describe('HF config and loader errors', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('reads Whisper configs and audio_config composites, refuses other model types', () => {
    expect(whisperEncoderConfigFromHF({ model_type: 'whisper', d_model: 512, encoder_layers: 6, encoder_attention_heads: 8, encoder_ffn_dim: 2048 }))
      .toMatchObject({ dModel: 512, numLayers: 6, numHeads: 8, ffnDim: 2048, numMelBins: 80, maxSourcePositions: 1500 });
    expect(whisperEncoderConfigFromHF({ model_type: 'qwen2_audio', audio_config: { model_type: 'qwen2_audio_encoder', num_mel_bins: 128 } }))
      .toMatchObject({ numMelBins: 128, dModel: 384 });
    expect(() => whisperEncoderConfigFromHF({ model_type: 'llama' })).toThrow(/model_type 'llama' is not a Whisper encoder/);
  });

  it('a checkpoint with no encoder, or with wrong shapes, is a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chimera-whisper-bad-'));
    try {
      const x = tf.zeros([2, 2]);
      await saveSafetensors(join(dir, 'model.safetensors'), { 'model.decoder.layer_norm.weight': x });
      await expect(loadHFWhisperEncoder(dir)).rejects.toThrow(/holds no Whisper encoder/);
      x.dispose();
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'whisper', d_model: 16, encoder_layers: 2, encoder_attention_heads: 2, encoder_ffn_dim: 32, num_mel_bins: 8, max_source_positions: 64 }));
      const { WhisperEncoder: Encoder } = await import('../src/encoder/encoder');
      const { tinyWhisperEncoder } = await import('../src/encoder/config');
      const wrong: WhisperEncoder = new Encoder(tinyWhisperEncoder({ ffnDim: 48 }));
      const state = hfWhisperStateDict(wrong);
      await saveSafetensors(join(dir, 'model.safetensors'), state);
      tf.dispose(Object.values(state));
      wrong.dispose();
      await expect(loadHFWhisperEncoder(dir)).rejects.toThrow(/does not fit the configured encoder.*fc1/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
