import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, loadSafetensors, saveSafetensors } from '@chimera/core';
import { runTorchScript, torchAvailable } from '@chimera/core/testing';
import { VQModel, exportLlamaGenVQ, importLlamaGenVQ, loadLlamaGenVQ } from '../src/index';

interface Stored {
  shape: number[];
  data: number[];
}
interface ReferenceCase {
  name: string;
  config: { prefix: string; size: [number, number]; ch: number; ch_mult: number[]; res: number; z: number; n_e: number; e_dim: number; groups: number; attn: boolean };
  input: Stored;
  codes: Stored;
  latents: Stored;
  quantized: Stored;
  reconstruction: Stored;
  codebook_loss: number;
  commitment_loss: number;
  loss: number;
  grads: Record<string, Stored>;
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/vq_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

const tensorOf = (s: Stored) => tf.tensor(s.data, s.shape);
function maxAbsDiff(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  return expected.data.reduce((m, e, i) => Math.max(m, Math.abs(values[i]! - e)), 0);
}
function modelFor(c: ReferenceCase['config']): VQModel {
  return new VQModel({
    channels: c.ch,
    channelMult: c.ch_mult,
    numResBlocks: c.res,
    zChannels: c.z,
    codebookSize: c.n_e,
    codebookDim: c.e_dim,
    normGroups: c.groups,
    attention: c.attn,
  });
}

describe.skipIf(!hasTorch)("LlamaGen / Janus VQ checkpoints: parity with a PyTorch reference of LlamaGen's layout", () => {
  let dir: string;
  let cases: ReferenceCase[];

  beforeAll(async () => {
    await initBackend();
    dir = mkdtempSync(join(tmpdir(), 'chimera-vq-'));
    const path = runTorchScript(script, ['make', dir]).trim();
    cases = (JSON.parse(readFileSync(path, 'utf8')) as { cases: ReferenceCase[] }).cases;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the reference has the cases this file checks (one with attention, four levels and the Janus prefix)', () => {
    expect(cases.map((c) => [c.name, c.config.attn, c.config.ch_mult.length, c.config.prefix])).toEqual([
      ['small', false, 3, ''],
      ['janus', true, 4, 'gen_vision_model.'],
    ]);
  });

  for (const name of ['small', 'janus']) {
    it(`${name}: codes identical; latents, reconstruction, losses and gradients within 1e-4`, async () => {
      const c = cases.find((x) => x.name === name)!;
      const model = modelFor(c.config);
      await loadLlamaGenVQ(model, join(dir, name, 'model.safetensors'));
      const x = tensorOf(c.input) as tf.Tensor4D;
      const codes = model.encode(x);
      expect(Array.from(codes.dataSync())).toEqual(c.codes.data);
      const latents = model.encodeLatents(x);
      expect(maxAbsDiff(latents, c.latents)).toBeLessThan(TOLERANCE);
      const quantized = model.lookup(codes);
      expect(maxAbsDiff(quantized, c.quantized)).toBeLessThan(TOLERANCE);
      const decoded = model.decode(codes);
      expect(maxAbsDiff(decoded, c.reconstruction)).toBeLessThan(TOLERANCE);
      const pass = model.forward(x, { record: false });
      expect(pass.losses.codebook.dataSync()[0]).toBeCloseTo(c.codebook_loss, 5);
      expect(pass.losses.commitment.dataSync()[0]).toBeCloseTo(c.commitment_loss, 5);

      // Gradients of mean((recon - x)^2) + codebook + commitment, compared in PyTorch's layout.
      const params = new Map(model.namedParameters());
      const names = Object.keys(c.grads);
      const variables = names.map((n) => params.get(n)!);
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward(x, { record: false });
        const loss = tf.addN([tf.mean(tf.square(tf.sub(out.reconstruction, x))), out.losses.codebook, out.losses.commitment]) as tf.Scalar;
        return loss;
      }, variables);
      expect(value.dataSync()[0]).toBeCloseTo(c.loss, 5);
      for (const [i, n] of names.entries()) {
        const g = grads[variables[i]!.name]!;
        const torchLayout = g.rank === 4 ? tf.transpose(g, [3, 2, 0, 1]) : g;
        const scale = c.grads[n]!.data.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
        expect(maxAbsDiff(torchLayout, c.grads[n]!) / scale, n).toBeLessThan(TOLERANCE);
        torchLayout.dispose();
      }
      tf.dispose([x, codes, latents, quantized, decoded, pass.reconstruction, pass.codes, pass.latents, pass.losses.codebook, pass.losses.commitment, pass.losses.entropy, value, ...Object.values(grads)]);
      model.dispose();
    });
  }

  it('exports tensors PyTorch loads strictly and runs to the same reconstruction', async () => {
    const c = cases.find((x) => x.name === 'janus')!;
    const model = modelFor(c.config);
    await loadLlamaGenVQ(model, join(dir, 'janus', 'model.safetensors'));
    const exported = exportLlamaGenVQ(model);
    const path = join(dir, 'export.safetensors');
    await saveSafetensors(path, exported);
    tf.dispose(Object.values(exported));
    const result = JSON.parse(runTorchScript(script, ['check', dir, 'janus', path]).trim()) as { max_abs_diff: number };
    expect(result.max_abs_diff).toBeLessThan(TOLERANCE);
    model.dispose();
  });

  it('refuses a checkpoint of another config, naming missing and unexpected keys', async () => {
    const c = cases.find((x) => x.name === 'small')!;
    const model = modelFor({ ...c.config, attn: true });
    const { tensors } = await loadSafetensors(join(dir, 'small', 'model.safetensors'));
    expect(() => importLlamaGenVQ(model, tensors)).toThrow(/does not match this VQModel's config; missing: encoder\.conv_blocks\.2\.attn\.0\.norm\.weight/);
    const other = modelFor({ ...c.config, attn: false });
    const extra = { ...tensors, 'encoder.extra.weight': tf.zeros([1]) };
    expect(() => importLlamaGenVQ(other, extra)).toThrow(/unexpected: encoder\.extra\.weight/);
    expect(() => importLlamaGenVQ(other, tensors, { prefix: 'gen_vision_model.' })).toThrow(/no tensor starts with 'gen_vision_model\.'/);
    tf.dispose([...Object.values(tensors), extra['encoder.extra.weight']]);
    model.dispose();
    other.dispose();
  });
});
