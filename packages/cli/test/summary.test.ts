// `chimera summary` on files the test writes: an HF-style folder (two dtypes, config.json), a sharded folder and a
// Chimera checkpoint. Expected counts are computed here from the shapes written, never typed in.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_KIND_KEY, Linear, saveCheckpoint, saveSafetensors, saveShardedSafetensors, tf } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { groupOf } from '../src/commands/summary';
import { BIN, assertBuilt, runChimera, tempFolder } from './run-cli';

const temp = tempFolder('summary');
beforeAll(async () => {
  assertBuilt();
  await setupTestBackend('cpu');
});
afterAll(temp.remove);

const SHAPES: Record<string, number[]> = {
  'model.embed_tokens.weight': [11, 6],
  'model.layers.0.self_attn.q_proj.weight': [6, 6],
  'model.layers.0.mlp.up_proj.weight': [9, 6],
  'model.layers.1.self_attn.q_proj.weight': [6, 6],
  'model.layers.1.mlp.up_proj.weight': [9, 6],
  'model.norm.weight': [6],
  'lm_head.weight': [11, 6],
};
const F16 = new Set(['model.embed_tokens.weight', 'lm_head.weight']);

function tensors(): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(SHAPES).map(([name, shape], i) => [name, tf.fill(shape, i + 0.5)]));
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

interface SummaryJson {
  layout: string;
  chimeraKind?: string;
  files: { path: string; tensors: number; metadata: Record<string, string> }[];
  config: { modelType: string } | null;
  tensors: number;
  parameters: number;
  dtypes: Record<string, { tensors: number; parameters: number }>;
  groups: { name: string; tensors: number; parameters: number }[];
  tensorList: { name: string; dtype: string; shape: number[] }[];
}

function summaryOf(path: string, extra: string[] = []): SummaryJson {
  const run = runChimera(['summary', path, '--json', ...extra], temp.dir);
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as SummaryJson;
}

describe('chimera summary', () => {
  it('counts tensors, dtypes and parameters by group of an HF folder, from the headers', async () => {
    const dir = join(temp.dir, 'hf');
    const ts = tensors();
    await saveShardedSafetensors(dir, ts, { dtypes: Object.fromEntries([...F16].map((n) => [n, 'F16'])) });
    tf.dispose(Object.values(ts));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }));

    const summary = summaryOf(dir);
    const names = Object.keys(SHAPES);
    expect(summary.layout).toBe('hf');
    expect(summary.config?.modelType).toBe('llama');
    expect(summary.tensors).toBe(names.length);
    expect(summary.parameters).toBe(names.reduce((s, n) => s + count(SHAPES[n]!), 0));
    const f16 = names.filter((n) => F16.has(n));
    expect(summary.dtypes.F16).toEqual({ tensors: f16.length, parameters: f16.reduce((s, n) => s + count(SHAPES[n]!), 0) });
    expect(summary.dtypes.F32!.tensors).toBe(names.length - f16.length);
    const layers = names.filter((n) => n.startsWith('model.layers.'));
    expect(summary.groups).toContainEqual({ name: 'model.layers.*', tensors: layers.length, parameters: layers.reduce((s, n) => s + count(SHAPES[n]!), 0) });
    expect(summary.groups.map((g) => g.name).sort()).toEqual(['lm_head', 'model.embed_tokens', 'model.layers.*', 'model.norm']);
    expect(Object.fromEntries(summary.tensorList.map((t) => [t.name, t.shape]))).toEqual(SHAPES);

    // The text form: one row per group and the total, and with --tensors one row per tensor.
    const text = runChimera(['summary', dir, '--tensors'], temp.dir);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/layout +HF \/ PyTorch/);
    expect(text.stdout).toMatch(new RegExp(`^model\\.layers\\.\\* +${layers.length} +${summary.groups.find((g) => g.name === 'model.layers.*')!.parameters} `, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^total +${names.length} +${summary.parameters.toLocaleString('en-US')} +100\\.0%$`, 'm'));
    expect(text.stdout).toMatch(/^model\.embed_tokens\.weight +F16 +\[11, 6\] +66$/m);
  });

  it('reads every shard of a sharded folder and groups at another depth', async () => {
    const dir = join(temp.dir, 'sharded');
    const ts = tensors();
    const saved = await saveShardedSafetensors(dir, ts, { maxShardBytes: 300 });
    tf.dispose(Object.values(ts));
    const summary = summaryOf(dir, ['--depth', '1']);
    expect(saved.files.length).toBeGreaterThan(2);
    expect(summary.files).toHaveLength(saved.files.length);
    expect(summary.tensors).toBe(Object.keys(SHAPES).length);
    expect(summary.groups.map((g) => g.name).sort()).toEqual(['lm_head', 'model']);
    expect(summary.config).toBeNull();
  });

  it('recognises a Chimera checkpoint by its metadata', async () => {
    const layer = new Linear(5, 3);
    const file = join(temp.dir, 'linear.safetensors');
    await saveCheckpoint(layer, file);
    layer.dispose();
    const summary = summaryOf(file);
    expect(summary.layout).toBe('chimera');
    expect(summary.chimeraKind).toBe('full');
    expect(summary.files[0]!.metadata[CHECKPOINT_KIND_KEY]).toBe('full');
    expect(Object.fromEntries(summary.tensorList.map((t) => [t.name, t.shape]))).toEqual({ weight: [5, 3], bias: [3] });
    expect(summary.parameters).toBe(5 * 3 + 3);
  });

  it('fails with exit 1 and the reason for a path that holds no checkpoint', () => {
    const run = runChimera(['summary', temp.dir + '/nothing-here'], temp.dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^chimera summary: .*nothing-here: no such file or folder; pass a \.safetensors file/);
  });

  it('stops quietly (exit 0) when the reader closes the pipe early, as `| head` does', async () => {
    const file = join(temp.dir, 'many.safetensors');
    const many = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`model.layers.${i}.mlp.weight`, tf.zeros([2])]));
    await saveSafetensors(file, many);
    tf.dispose(Object.values(many));
    const child = spawn(process.execPath, [BIN, 'summary', file, '--tensors'], { cwd: temp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('groups names: a layer index ends the group, the leaf is never one', () => {
    expect(groupOf('model.layers.12.mlp.up_proj.weight', 2)).toBe('model.layers.*');
    expect(groupOf('vision_model.encoder.layers.3.fc1.weight', 3)).toBe('vision_model.encoder.layers.*');
    expect(groupOf('vision_model.encoder.layers.3.fc1.weight', 2)).toBe('vision_model.encoder');
    expect(groupOf('blocks.0.attn.weight', 3)).toBe('blocks.*');
    expect(groupOf('lm_head.weight', 2)).toBe('lm_head');
    expect(groupOf('weight', 2)).toBe('weight');
  });
});
