import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { Module } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { LayerNorm } from '../src/nn/norm';
import {
  CHECKPOINT_KIND_KEY,
  loadCheckpoint,
  loadSafetensors,
  loadTrainableCheckpoint,
  readSafetensorsHeader,
  saveCheckpoint,
  saveSafetensors,
  type RemapTable,
} from '../src/weights/index';
import { expectNoLeaks, setupTestBackend, TEST_BACKENDS } from '../src/testing/index';
import { nearestBf16Bits, referenceBf16 } from './weights-helpers';

/** A frozen "pretrained" encoder plus a trainable adapter, like a Flamingo-style fusion model in miniature. */
class Tower extends Module {
  readonly encoder: Linear;
  readonly norm: LayerNorm;
  readonly adapter: Linear;
  readonly steps: tf.Variable;
  constructor() {
    super();
    this.encoder = this.addModule('encoder', new Linear(4, 6));
    this.norm = this.addModule('norm', new LayerNorm(6));
    this.adapter = this.addModule('adapter', new Linear(6, 3));
    this.steps = this.addBuffer('steps', tf.tensor1d([0], 'int32'));
  }
}

/** A model with random values everywhere (LayerNorm starts at ones/zeros, which would hide mistakes). */
function randomTower(seed: number): Tower {
  const tower = new Tower();
  const fillValue = seed;
  for (const [, v] of Object.entries(tower.stateDict())) {
    const variable = v as tf.Variable;
    tf.tidy(() => variable.assign(variable.dtype === 'int32' ? tf.fill(variable.shape, fillValue, 'int32') : tf.randomNormal(variable.shape, 0, 1, 'float32', seed++)));
  }
  return tower;
}

function snapshot(module: Module): Record<string, number[]> {
  return Object.fromEntries(Object.entries(module.stateDict()).map(([k, t]) => [k, Array.from(t.dataSync())]));
}

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-weights-ckpt-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.each(TEST_BACKENDS)('module checkpoints on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('saves a full state dict to a file and to a sharded directory, and loads both exactly', async () => {
    const source = randomTower(1);
    const expected = snapshot(source);
    for (const path of [nodePath.join(tmp, `full-${backend}.safetensors`), nodePath.join(tmp, `full-${backend}`)]) {
      const keys = await expectNoLeaks(() => saveCheckpoint(source, path, { maxShardBytes: 64, metadata: { step: '7' } }));
      expect(keys.sort()).toEqual(Object.keys(expected).sort());
      const target = randomTower(100);
      expect(snapshot(target)).not.toEqual(expected);
      const result = await expectNoLeaks(() => loadCheckpoint(target, path));
      expect(result).toEqual({ missing: [], unexpected: [] });
      expect(snapshot(target)).toEqual(expected);
      target.dispose();
    }
    const files = await fs.readdir(nodePath.join(tmp, `full-${backend}`));
    expect(files).toContain('model.safetensors.index.json');
    const { metadata } = await loadSafetensors(nodePath.join(tmp, `full-${backend}.safetensors`), { names: [] });
    expect(metadata).toEqual({ step: '7', [CHECKPOINT_KIND_KEY]: 'full' });
    source.dispose();
  });

  it('loads a trainable-only checkpoint on top of a full pretrained one (OpenFlamingo pattern)', async () => {
    const pretrainedPath = nodePath.join(tmp, `pretrained-${backend}.safetensors`);
    const adapterPath = nodePath.join(tmp, `adapter-${backend}.safetensors`);
    const pretrained = randomTower(1);
    await saveCheckpoint(pretrained, pretrainedPath);

    // "Fine-tune": freeze the pretrained parts, change the adapter, save only what trains.
    const trained = randomTower(50);
    await loadCheckpoint(trained, pretrainedPath);
    trained.freeze('encoder');
    trained.freeze('norm');
    tf.tidy(() => trained.adapter.weight.assign(tf.add(trained.adapter.weight, 0.5)));
    await saveCheckpoint(trained, adapterPath, { trainableOnly: true });
    const header = await readSafetensorsHeader(adapterPath);
    expect(header.entries.map((e) => e.name).sort()).toEqual(['adapter.bias', 'adapter.weight']);
    expect(header.metadata[CHECKPOINT_KIND_KEY]).toBe('trainable');

    // A fresh process: build, load pretrained, freeze the same way, load the adapter on top.
    const fresh = randomTower(900);
    await loadCheckpoint(fresh, pretrainedPath);
    fresh.freeze('encoder');
    fresh.freeze('norm');
    const result = await expectNoLeaks(() => loadTrainableCheckpoint(fresh, adapterPath));
    expect(result.missing.sort()).toEqual(['encoder.bias', 'encoder.weight', 'norm.bias', 'norm.weight', 'steps']);
    const want = snapshot(pretrained);
    want['adapter.weight'] = snapshot(trained)['adapter.weight']!;
    expect(snapshot(fresh)).toEqual(want);
    expect(want['adapter.weight']).not.toEqual(snapshot(pretrained)['adapter.weight']);

    // Strict loading of a partial file is refused with a pointer to the fix.
    await expect(loadCheckpoint(randomTower(3), adapterPath)).rejects.toThrow(/missing \(5\).*\n.*strict: false/s);
    for (const m of [pretrained, trained, fresh]) m.dispose();
  });

  it('refuses a trainable-only file with keys the module lacks or without its trainable keys, assigning nothing', async () => {
    const adapterPath = nodePath.join(tmp, `adapter-bad-${backend}.safetensors`);
    const extra = tf.zeros([2]);
    const w = tf.zeros([6, 3]);
    const b = tf.zeros([3]);
    await saveSafetensors(adapterPath, { 'adapter.weight': w, 'adapter.bias': b, 'gate.alpha': extra });
    const tower = randomTower(4);
    tower.freeze('encoder');
    tower.freeze('norm');
    const before = snapshot(tower);
    await expect(loadTrainableCheckpoint(tower, adapterPath)).rejects.toThrow(/keys the module lacks \(1\): gate.alpha/);
    expect(snapshot(tower)).toEqual(before);

    await saveSafetensors(adapterPath, { 'adapter.weight': w, 'adapter.bias': b });
    tower.unfreeze('norm'); // the freezing policy changed since the save
    await expect(loadTrainableCheckpoint(tower, adapterPath)).rejects.toThrow(
      /trainable parameters the checkpoint lacks \(2\): norm.weight, norm.bias/,
    );
    expect(snapshot(tower)).toEqual(before);
    for (const t of [extra, w, b]) t.dispose();
    tower.dispose();
  });

  it('keeps chosen buffers in a trainable-only save, and writes BF16 when asked', async () => {
    const path = nodePath.join(tmp, `bf16-${backend}.safetensors`);
    const tower = randomTower(8);
    tower.freeze('encoder');
    const keys = await saveCheckpoint(tower, path, { trainableOnly: true, include: 'steps', floatDtype: 'BF16' });
    expect(keys.sort()).toEqual(['adapter.bias', 'adapter.weight', 'norm.bias', 'norm.weight', 'steps']);
    const header = await readSafetensorsHeader(path);
    expect(Object.fromEntries(header.entries.map((e) => [e.name, e.dtype]))).toMatchObject({ 'adapter.weight': 'BF16', steps: 'I32' });
    const target = randomTower(80);
    target.freeze('encoder');
    await loadTrainableCheckpoint(target, path);
    const rounded = Array.from(tower.adapter.weight.dataSync()).map((x) => referenceBf16(nearestBf16Bits(x)));
    expect(Array.from(target.adapter.weight.dataSync())).toEqual(rounded);
    expect(Array.from(target.steps.dataSync())).toEqual([8]);
    tower.dispose();
    target.dispose();
  });

  it('exports through a remap table in PyTorch layout and imports back', async () => {
    const table: RemapTable = {
      rules: [
        // Ordered: on export `{layer}.weight` would also match norm.weight, so the norm rule comes first.
        { external: 'vision.ln.{p}', internal: 'norm.{p}' },
        { external: 'vision.{layer}_proj.weight', internal: '{layer}.weight', layout: 'linear' },
        { external: 'vision.{layer}_proj.bias', internal: '{layer}.bias' },
      ],
      ignoreInternal: ['steps'],
      ignoreExternal: ['vision.position_ids'],
    };
    const path = nodePath.join(tmp, `hf-${backend}.safetensors`);
    const tower = randomTower(11);
    await expectNoLeaks(() => saveCheckpoint(tower, path, { remap: table }));
    const { tensors } = await loadSafetensors(path);
    expect(Object.keys(tensors).sort()).toEqual([
      'vision.adapter_proj.bias', 'vision.adapter_proj.weight', 'vision.encoder_proj.bias', 'vision.encoder_proj.weight',
      'vision.ln.bias', 'vision.ln.weight',
    ]);
    expect(tensors['vision.encoder_proj.weight']!.shape).toEqual([6, 4]); // PyTorch [out, in]
    const ours = tower.encoder.weight.arraySync() as number[][];
    const theirs = tensors['vision.encoder_proj.weight']!.arraySync() as number[][];
    expect(theirs).toEqual(ours[0]!.map((_, o) => ours.map((row) => row[o])));
    for (const t of Object.values(tensors)) t.dispose();

    const target = randomTower(12);
    await loadCheckpoint(target, path, { remap: table, strict: false });
    const want = snapshot(tower);
    want.steps = snapshot(target).steps!; // not exported
    expect(snapshot(target)).toEqual(want);
    tower.dispose();
    target.dispose();
  });
});
