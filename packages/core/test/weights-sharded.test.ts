import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import {
  loadShardedSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  saveSafetensors,
  saveShardedSafetensors,
} from '../src/weights/index';
import { expectNoLeaks, setupTestBackend, TEST_BACKENDS } from '../src/testing/index';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-weights-sharded-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>);
}
function dispose(record: Record<string, tf.Tensor>): void {
  for (const t of Object.values(record)) t.dispose();
}

/** Ten tensors of 40..400 bytes (F32), one int, one bool. */
function makeTensors(): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (let i = 0; i < 10; i++) out[`layers.${i}.weight`] = tf.tidy(() => tf.add(tf.range(0, (i + 1) * 10), i * 1000));
  out['embed.ids'] = tf.tensor1d([3, 1, 4], 'int32');
  out['mask'] = tf.tensor1d([true, false], 'bool');
  return out;
}

describe.each(TEST_BACKENDS)('sharded checkpoints on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('splits by max shard size in the HF layout and reads back through the index', async () => {
    const dir = nodePath.join(tmp, `sharded-${backend}`);
    const tensors = makeTensors();
    const result = await expectNoLeaks(() =>
      saveShardedSafetensors(dir, tensors, { maxShardBytes: 600, metadata: { format: 'pt' } }),
    );
    const totalBytes = Object.values(tensors).reduce((n, t) => n + t.size * (t.dtype === 'bool' ? 1 : 4), 0);
    expect(result.totalSize).toBe(totalBytes);
    // Independent greedy split: sizes 40, 80, ..., 400, then 12 and 2.
    const sizes = Object.values(tensors).map((t) => t.size * (t.dtype === 'bool' ? 1 : 4));
    const expectedShards: number[][] = [];
    let current: number[] = [];
    for (const s of sizes) {
      if (current.length && current.reduce((a, b) => a + b, 0) + s > 600) {
        expectedShards.push(current);
        current = [];
      }
      current.push(s);
    }
    expectedShards.push(current);
    expect(result.files).toEqual(
      expectedShards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(expectedShards.length).padStart(5, '0')}.safetensors`),
    );

    const index = JSON.parse(await fs.readFile(nodePath.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata).toEqual({ format: 'pt', total_size: totalBytes });
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(tensors));
    for (const [i, file] of result.files.entries()) {
      const header = await readSafetensorsHeader(nodePath.join(dir, file));
      const bytes = header.entries.reduce((n, e) => n + e.end - e.begin, 0);
      expect(bytes).toBe(expectedShards[i]!.reduce((a, b) => a + b, 0));
      expect(bytes <= 600 || header.entries.length === 1).toBe(true);
      for (const e of header.entries) expect(index.weight_map[e.name]).toBe(file);
    }

    const loaded = await loadShardedSafetensors(dir);
    expect(loaded.metadata).toEqual({ format: 'pt' });
    expect(Object.keys(loaded.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect([name, loaded.tensors[name]!.dtype, values(loaded.tensors[name]!)]).toEqual([name, t.dtype, values(t)]);
    }
    dispose(loaded.tensors);

    // Partial read through the index, and through the index path itself.
    const some = await loadShardedSafetensors(nodePath.join(dir, 'model.safetensors.index.json'), { names: ['layers.9.weight', 'mask'] });
    expect(Object.keys(some.tensors).sort()).toEqual(['layers.9.weight', 'mask']);
    dispose(some.tensors);
    dispose(tensors);
  });

  it('writes one model.safetensors without an index when everything fits, and removes stale shards', async () => {
    const dir = nodePath.join(tmp, `resave-${backend}`);
    const tensors = makeTensors();
    await saveShardedSafetensors(dir, tensors, { maxShardBytes: 500 });
    const shardCount = (await fs.readdir(dir)).filter((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n)).length;
    expect(shardCount).toBeGreaterThan(2);
    await fs.writeFile(nodePath.join(dir, 'unrelated.txt'), 'keep me');

    const fewer = await saveShardedSafetensors(dir, tensors, { maxShardBytes: 1500 });
    expect(fewer.files.length).toBeLessThan(shardCount);
    expect((await fs.readdir(dir)).filter((n) => n.endsWith('.safetensors')).sort()).toEqual([...fewer.files].sort());

    const single = await saveShardedSafetensors(dir, tensors);
    expect(single).toMatchObject({ files: ['model.safetensors'], indexPath: null });
    expect((await fs.readdir(dir)).sort()).toEqual(['model.safetensors', 'unrelated.txt']);
    const loaded = await loadShardedSafetensors(dir);
    expect(values(loaded.tensors['layers.3.weight']!)).toEqual(values(tensors['layers.3.weight']!));
    dispose(loaded.tensors);
    dispose(tensors);
  });
});

describe('sharded index validation', () => {
  let dir: string;
  let files: string[];
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  async function freshCheckpoint(): Promise<string> {
    dir = await fs.mkdtemp(nodePath.join(tmp, 'bad-'));
    const tensors = makeTensors();
    ({ files } = await saveShardedSafetensors(dir, tensors, { maxShardBytes: 600 }));
    dispose(tensors);
    return nodePath.join(dir, 'model.safetensors.index.json');
  }

  async function editIndex(indexPath: string, edit: (index: { weight_map: Record<string, unknown> }) => void) {
    const index = JSON.parse(await fs.readFile(indexPath, 'utf8'));
    edit(index);
    await fs.writeFile(indexPath, JSON.stringify(index));
  }

  it('reports a missing shard file', async () => {
    const indexPath = await freshCheckpoint();
    expect(files[1]).toBe('model-00002-of-00005.safetensors');
    await fs.rm(nodePath.join(dir, files[1]!));
    await expect(loadShardedSafetensors(indexPath)).rejects.toThrow(
      /lists 2 tensor\(s\) in model-00002-of-00005.safetensors, which does not exist/,
    );
  });

  it('reports a tensor the index assigns to the wrong shard', async () => {
    const indexPath = await freshCheckpoint();
    await editIndex(indexPath, (index) => {
      index.weight_map['layers.0.weight'] = files[1];
    });
    const error = await loadShardedSafetensors(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(/shard model-00001-of-00005.safetensors does not match the index; holds 1 tensor\(s\) the index does not assign to it: 'layers.0.weight'/);
    expect((error as Error).message).toMatch(/shard model-00002-of-00005.safetensors does not match the index; missing 1 tensor\(s\) the index assigns to it: 'layers.0.weight'/);
  });

  it('reports a name the index claims but no shard holds', async () => {
    const indexPath = await freshCheckpoint();
    await editIndex(indexPath, (index) => {
      index.weight_map['ghost'] = files[0];
    });
    await expect(loadShardedSafetensors(dir)).rejects.toThrow(/missing 1 tensor\(s\) the index assigns to it: 'ghost'/);
  });

  it('refuses paths outside the checkpoint directory and malformed indexes', async () => {
    const indexPath = await freshCheckpoint();
    await editIndex(indexPath, (index) => {
      index.weight_map['layers.0.weight'] = '../elsewhere.safetensors';
    });
    await expect(loadShardedSafetensors(dir)).rejects.toThrow(/must be a file name in the index's directory/);
    await fs.writeFile(indexPath, '{"weight_map": [1]}');
    await expect(loadShardedSafetensors(dir)).rejects.toThrow(/needs a "weight_map" object/);
    await fs.writeFile(indexPath, '{not json');
    await expect(loadShardedSafetensors(dir)).rejects.toThrow(/index is not valid JSON/);
  });

  it('reports a corrupt shard before loading any tensor, and an unknown requested name', async () => {
    const indexPath = await freshCheckpoint();
    const shard = nodePath.join(dir, files[2]!);
    const bytes = await fs.readFile(shard);
    await fs.writeFile(shard, bytes.subarray(0, bytes.length - 3));
    const before = tf.memory().numTensors;
    await expect(loadShardedSafetensors(dir)).rejects.toThrow(/model-00003-of-00005.safetensors.*data section/);
    expect(tf.memory().numTensors).toBe(before);
    await fs.writeFile(shard, bytes);
    await expect(loadShardedSafetensors(indexPath, { names: ['nope'] })).rejects.toThrow(/no tensor named 'nope' in the index/);
  });

  it('falls back to model.safetensors and says what is missing', async () => {
    const empty = await fs.mkdtemp(nodePath.join(tmp, 'empty-'));
    await expect(loadShardedSafetensors(empty)).rejects.toThrow(/holds neither model.safetensors.index.json nor model.safetensors/);
    const t = tf.tensor1d([1, 2]);
    await saveSafetensors(nodePath.join(empty, 'model.safetensors'), { t });
    const { tensors } = await loadShardedSafetensors(empty);
    expect(values(tensors.t!)).toEqual([1, 2]);
    dispose(tensors);
    t.dispose();
  });
});
