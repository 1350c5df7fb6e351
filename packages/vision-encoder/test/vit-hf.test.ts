// HF import/export of vision towers without torch: layouts, prefixes, config.json handling, errors and leaks.
// (The PyTorch-made checkpoints are covered by vit-parity.test.ts.)
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveSafetensors } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaks, Rng } from '@chimera/core/testing';
import { VisionTransformer } from '../src/vit/tower';
import { tinyViT, siglipSo400m14, type ViTConfig } from '../src/vit/config';
import {
  exportHFVisionTower,
  hfVisionStateDict,
  loadHFVisionTower,
  vitConfigFromHF,
  vitConfigToHF,
} from '../src/vit/hf-import';

const CLIP_TINY = tinyViT({ numLayers: 2 });
const SIGLIP_TINY = tinyViT({ family: 'siglip', clsToken: false, preNorm: false, patchBias: true, activation: 'gelu_tanh', layerNormEps: 1e-6 });

function makeTower(config: ViTConfig, seed: number): VisionTransformer {
  const tower = new VisionTransformer(config);
  const rng = new Rng(seed);
  for (const [, v] of tower.namedParameters()) {
    tf.tidy(() => v.assign(tf.add(v, tf.tensor(Float32Array.from({ length: v.size }, () => 0.2 * rng.normal()), v.shape))));
  }
  return tower;
}

function sameOutputs(a: VisionTransformer, b: VisionTransformer): boolean {
  return tf.tidy(() => {
    const pixels = tf.randomNormal([2, 12, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const x = a.forward(pixels, { taps: [0, 1] });
    const y = b.forward(pixels, { taps: [0, 1] });
    return [x.hidden, ...x.taps].every((t, i) => tf.max(tf.abs(tf.sub(t, [y.hidden, ...y.taps][i]!))).dataSync()[0] === 0);
  });
}

async function writeCheckpoint(dir: string, tensors: Record<string, tf.Tensor>, config?: unknown): Promise<string> {
  mkdirSync(dir, { recursive: true });
  await saveSafetensors(join(dir, 'model.safetensors'), tensors);
  if (config !== undefined) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function loadError(path: string, options?: Parameters<typeof loadHFVisionTower>[1]): Promise<string> {
  let message = '';
  await expectNoLeaks(async () => {
    try {
      (await loadHFVisionTower(path, options)).dispose();
    } catch (error) {
      message = (error as Error).message;
    }
  }, 'failing load');
  if (!message) throw new Error('expected the load to fail');
  return message;
}

describe('HF config.json', () => {
  it('fills the keys HF leaves out with the family defaults and maps activations', () => {
    const clip = vitConfigFromHF({ model_type: 'llava', vision_config: { model_type: 'clip_vision_model', hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 336, patch_size: 14 } });
    expect(clip).toMatchObject({ family: 'clip', activation: 'quick_gelu', layerNormEps: 1e-5, channels: 3, clsToken: true, preNorm: true, patchBias: false, imageSize: 336, dropRemainder: false });
    const siglip = vitConfigFromHF({ model_type: 'siglip', vision_config: { hidden_size: 1152, intermediate_size: 4304, num_hidden_layers: 27, num_attention_heads: 16, image_size: 384, patch_size: 14 } });
    expect(siglip).toEqual(siglipSo400m14());
    expect(vitConfigFromHF({ model_type: 'clip_vision_model' })).toMatchObject({ patchSize: 32, hiddenSize: 768 }); // CLIPVisionConfig defaults
  });

  it('round-trips through vitConfigToHF and rejects what it cannot read', () => {
    for (const config of [CLIP_TINY, SIGLIP_TINY]) expect(vitConfigFromHF(vitConfigToHF(config))).toEqual(config);
    expect(vitConfigToHF(SIGLIP_TINY)).toMatchObject({ model_type: 'siglip_vision_model', hidden_act: 'gelu_pytorch_tanh' });
    expect(() => vitConfigFromHF({ model_type: 'vit' })).toThrow(/'vit' is not a CLIP or SigLIP vision tower/);
    expect(() => vitConfigFromHF({ model_type: 'clip', vision_config: { hidden_size: '32' } })).toThrow(/'hidden_size' must be a number/);
    expect(() => vitConfigFromHF({ hidden_size: 32 })).toThrow(/pass \{ family/);
    expect(() => vitConfigFromHF({ model_type: 'clip' }, 'siglip')).toThrow(/declares a clip tower/);
  });
});

describe.each(TEST_BACKENDS)('%s', (backend) => {
  let dir: string;
  beforeAll(async () => {
    await setupTestBackend(backend);
    dir = mkdtempSync(join(tmpdir(), `chimera-vit-hf-${backend}-`));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports HF names and PyTorch layouts (Linear [out, in], conv [out, in, kh, kw])', () => {
    const tower = makeTower(CLIP_TINY, 1);
    const hf = hfVisionStateDict(tower);
    try {
      const names = Object.keys(hf);
      expect(names).toContain('vision_model.embeddings.class_embedding');
      expect(names).toContain('vision_model.pre_layrnorm.weight');
      expect(names).toContain('vision_model.encoder.layers.1.self_attn.out_proj.weight');
      expect(names).toContain('vision_model.encoder.layers.1.layer_norm2.bias');
      expect(names.every((n) => n.startsWith('vision_model.') && !n.includes('o_proj'))).toBe(true);
      expect(names).toHaveLength(Object.keys(tower.stateDict()).length);
      const conv = hf['vision_model.embeddings.patch_embedding.weight']!;
      expect(conv.shape).toEqual([16, 3, 4, 4]);
      const ours = tower.patch_embedding.weight.arraySync() as number[][][][]; // [kh, kw, in, out]
      const theirs = conv.arraySync() as number[][][][]; // [out, in, kh, kw]
      expect(theirs[5]![2]![1]![3]).toBe(ours[1]![3]![2]![5]);
      const fc1 = hf['vision_model.encoder.layers.0.mlp.fc1.weight']!;
      expect(fc1.shape).toEqual([32, 16]);
      expect((fc1.arraySync() as number[][])[7]![3]).toBe((tower.layers[0]!.mlp.fc1.weight.arraySync() as number[][])[3]![7]);
    } finally {
      tf.dispose(Object.values(hf));
      tower.dispose();
    }
  });

  it('export then import gives the same tower (CLIP and SigLIP) and keeps only the tower in memory', async () => {
    for (const [name, config] of [
      ['clip', CLIP_TINY],
      ['siglip', SIGLIP_TINY],
    ] as const) {
      const tower = makeTower(config, 2);
      const out = join(dir, `roundtrip-${name}`);
      await expectNoLeaks(() => exportHFVisionTower(tower, out), 'export');
      const before = tf.memory().numTensors;
      const loaded = await loadHFVisionTower(out);
      expect(tf.memory().numTensors - before).toBe(Object.keys(loaded.stateDict()).length);
      expect(loaded.config).toEqual(config);
      expect(sameOutputs(tower, loaded)).toBe(true);
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tower.dispose();
    }
  });

  it('finds the tower prefix in composites, ignores everything else, and accepts an explicit prefix', async () => {
    const tower = makeTower(CLIP_TINY, 3);
    const nested = hfVisionStateDict(tower, { prefix: 'model.vision_tower.vision_model.' });
    const second = hfVisionStateDict(tower, { prefix: 'other_tower.vision_model.' });
    const extras = { 'model.multi_modal_projector.linear_1.weight': tf.ones([8, 16]), 'lm_head.weight': tf.ones([4, 8]) };
    try {
      const config = { model_type: 'llava', vision_config: vitConfigToHF(CLIP_TINY) };
      const llava = await writeCheckpoint(join(dir, 'llava'), { ...nested, ...extras }, config);
      const loaded = await loadHFVisionTower(llava);
      expect(sameOutputs(tower, loaded)).toBe(true);
      loaded.dispose();

      const two = await writeCheckpoint(join(dir, 'two-towers'), { ...nested, ...second }, config);
      expect(await loadError(two)).toMatch(/several vision towers \('model\.vision_tower\.vision_model\.', 'other_tower\.vision_model\.'\); pass options\.prefix/);
      const chosen = await loadHFVisionTower(two, { prefix: 'other_tower.vision_model.' });
      expect(sameOutputs(tower, chosen)).toBe(true);
      chosen.dispose();
      expect(await loadError(two, { prefix: 'nope.' })).toMatch(/no 'nope\.embeddings\.patch_embedding\.weight'/);

      const none = await writeCheckpoint(join(dir, 'no-tower'), extras, config);
      expect(await loadError(none)).toMatch(/holds no CLIP\/SigLIP vision tower/);
    } finally {
      tf.dispose([...Object.values(nested), ...Object.values(second), ...Object.values(extras)]);
      tower.dispose();
    }
  });

  it('without config.json, infers sizes from the weights but needs the family and the head count', async () => {
    const tower = makeTower(SIGLIP_TINY, 4);
    const hf = hfVisionStateDict(tower);
    try {
      const bare = await writeCheckpoint(join(dir, 'bare'), hf);
      const file = join(bare, 'model.safetensors');
      expect(await loadError(file)).toMatch(/does not say whether this is a CLIP or SigLIP tower; pass \{ family/);
      expect(await loadError(file, { family: 'siglip' })).toMatch(/pass options\.config\.numHeads/);
      const loaded = await loadHFVisionTower(file, { family: 'siglip', config: { numHeads: 2 } });
      expect(loaded.config).toEqual(SIGLIP_TINY);
      expect(sameOutputs(tower, loaded)).toBe(true);
      loaded.dispose();
    } finally {
      tf.dispose(Object.values(hf));
      tower.dispose();
    }
  });

  it('rejects mismatches with clear errors and leaks nothing', async () => {
    const tower = makeTower(CLIP_TINY, 5);
    const hf = hfVisionStateDict(tower);
    const stray = { 'vision_model.encoder.layers.0.self_attn.rel_pos.weight': tf.ones([2]) };
    try {
      const clipConfig = vitConfigToHF(CLIP_TINY);
      const ok = await writeCheckpoint(join(dir, 'ok'), hf, clipConfig);
      expect(await loadError(ok, { family: 'siglip' })).toMatch(/options\.family is 'siglip' but config\.json declares a clip tower/);
      const wide = await writeCheckpoint(join(dir, 'wide'), hf, { ...clipConfig, hidden_size: 32, num_attention_heads: 4 });
      expect(await loadError(wide)).toMatch(/does not fit the configured tower.*wrong shape/s);
      const extra = await writeCheckpoint(join(dir, 'extra'), { ...hf, ...stray }, clipConfig);
      expect(await loadError(extra)).toMatch(/no rule matches 1 key\(s\): vision_model\.encoder\.layers\.0\.self_attn\.rel_pos\.weight/);
      expect(await loadError(join(dir, 'missing'))).toMatch(/no such checkpoint/);
      mkdirSync(join(dir, 'empty'), { recursive: true });
      expect(await loadError(join(dir, 'empty'))).toMatch(/neither model\.safetensors\.index\.json nor model\.safetensors/);
    } finally {
      tf.dispose([...Object.values(hf), ...Object.values(stray)]);
      tower.dispose();
    }
  });

  it('refuses to export towers HF has no layout for', () => {
    const rope = new VisionTransformer(tinyViT({ positions: 'rope2d' }));
    expect(() => hfVisionStateDict(rope)).toThrow(/'rope2d' has no HF CLIP\/SigLIP layout/);
    rope.dispose();
    const odd = new VisionTransformer(tinyViT({ clsToken: false }));
    expect(() => hfVisionStateDict(odd)).toThrow(/a clip tower needs clsToken: true/);
    odd.dispose();
    const custom = new VisionTransformer(tinyViT({ family: null, preNorm: false }));
    expect(() => hfVisionStateDict(custom)).toThrow(/matches neither the CLIP/);
    custom.dispose();
  });
});
