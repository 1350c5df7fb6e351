// loadPretrained / savePretrained without torch: hand-written HF directories, bitwise round trips, half-precision
// files, tokenizer and generation_config files, extended models, and the errors for checkpoints that do not fit.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Linear, Module, loadShardedSafetensors, saveSafetensors } from '@chimera/core';
import { Rng, TEST_BACKENDS, setupTestBackend } from '@chimera/core/testing';
import {
  expectedHFShapes,
  expectedShapesFromConfig,
  loadPretrained,
  loadPretrainedWeights,
} from '../src/checkpoint/load-pretrained';
import { savePretrained } from '../src/checkpoint/save-pretrained';
import { configToHF, tinyLlama, type LlamaConfig } from '../src/config';
import { CausalLM } from '../src/model/causal-lm';
import type { BlockContext } from '../src/model/extension-points';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { exactlyEqual, idsTensor, perturbNorms, randomIds } from './model-helpers';
import { byteLevelBpeFiles } from './tokenizers-fixtures';

const execFileAsync = promisify(execFile);

let root: string;
let counter = 0;
const freshDir = (label: string) => join(root, `${label}-${counter++}`);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'chimera-llm-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Random [rows][cols] values from a seeded generator. */
function randomMatrix(rows: number, cols: number, rng: Rng, scale = 0.2): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => scale * (2 * rng.next() - 1)));
}

/**
 * An HF checkpoint written by hand: HF names, nn.Linear weights [out, in], the config.json transformers would
 * write. Returns the tensors as nested arrays so tests can check where each value lands.
 */
async function writeHFCheckpoint(
  dir: string,
  config: LlamaConfig,
  options: { extra?: Record<string, number[][]>; drop?: string[]; reshape?: Record<string, [number, number]> } = {},
): Promise<Record<string, number[][]>> {
  const rng = new Rng(11);
  const d = config.hiddenSize;
  const hd = config.headDim ?? d / config.numHeads;
  const weights: Record<string, number[][]> = { 'model.embed_tokens.weight': randomMatrix(config.vocabSize, d, rng) };
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    weights[`${p}input_layernorm.weight`] = randomMatrix(1, d, rng);
    weights[`${p}self_attn.q_proj.weight`] = randomMatrix(config.numHeads * hd, d, rng);
    weights[`${p}self_attn.k_proj.weight`] = randomMatrix(config.numKvHeads * hd, d, rng);
    weights[`${p}self_attn.v_proj.weight`] = randomMatrix(config.numKvHeads * hd, d, rng);
    if (config.attentionBias) {
      for (const proj of ['q_proj', 'k_proj', 'v_proj']) {
        weights[`${p}self_attn.${proj}.bias`] = randomMatrix(1, (proj === 'q_proj' ? config.numHeads : config.numKvHeads) * hd, rng);
      }
    }
    weights[`${p}self_attn.o_proj.weight`] = randomMatrix(d, config.numHeads * hd, rng);
    weights[`${p}post_attention_layernorm.weight`] = randomMatrix(1, d, rng);
    weights[`${p}mlp.gate_proj.weight`] = randomMatrix(config.intermediateSize, d, rng);
    weights[`${p}mlp.up_proj.weight`] = randomMatrix(config.intermediateSize, d, rng);
    weights[`${p}mlp.down_proj.weight`] = randomMatrix(d, config.intermediateSize, rng);
  }
  weights['model.norm.weight'] = randomMatrix(1, d, rng);
  if (!config.tieWordEmbeddings) weights['lm_head.weight'] = randomMatrix(config.vocabSize, d, rng);
  Object.assign(weights, options.extra ?? {});
  for (const name of options.drop ?? []) delete weights[name];
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, rows] of Object.entries(weights)) {
    const is1d = /(norm\.weight|\.bias|inv_freq)$/.test(name);
    const shape = options.reshape?.[name];
    tensors[name] = shape
      ? tf.zeros(shape)
      : is1d
        ? tf.tensor1d(rows[0]!)
        : tf.tensor2d(rows);
  }
  mkdirSync(dir, { recursive: true });
  try {
    await saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configToHF(config)));
  return weights;
}

function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  return exactlyEqual(a, b);
}

/** A Flamingo-style gated block: the identity while its gate is 0. */
class GatedBlock extends Module {
  readonly gate: tf.Variable;
  readonly proj: Linear;
  constructor(dim: number) {
    super();
    this.gate = this.addParameter('gate', tf.tensor1d([0]));
    this.proj = this.addModule('proj', new Linear(dim, dim));
  }
  forward(hidden: tf.Tensor, _ctx: BlockContext): tf.Tensor {
    return tf.tidy(() => tf.add(hidden, tf.mul(tf.tanh(this.gate), this.proj.forward(hidden))));
  }
}

class ProbeHead extends Module {
  readonly proj: Linear;
  constructor(dim: number, out: number) {
    super();
    this.proj = this.addModule('proj', new Linear(dim, out));
  }
  forward(hidden: tf.Tensor): tf.Tensor {
    return this.proj.forward(hidden);
  }
}

/** bf16 keeps the top 16 bits of a float32; f16 has an 11-bit significand. */
function f32Bits(x: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  return view.getUint32(0);
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it.each([
    ['llama, untied, GQA, llama3 RoPE, sharded', tinyLlama({ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } }), 8_000],
    ['qwen2, biases, tied, one file', tinyLlama({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: true, eosTokenId: [2, 3] }), undefined],
    ['qwen3, QK-norm', tinyLlama({ modelType: 'qwen3', qkNorm: 'rms', headDim: 16 }), undefined],
  ] as const)('%s: save then load is bitwise identical (weights, config, logits)', async (_, config, maxShardBytes) => {
    const before = tf.memory().numTensors;
    const model = new CausalLM(config);
    tf.tidy(() => perturbNorms(model)); // the helper leaves its source tensors to a scope
    const dir = freshDir('roundtrip');
    const { files, keys } = await savePretrained(model, dir, { maxShardBytes });
    expect(files).toContain('config.json');
    expect(files.includes('model.safetensors.index.json')).toBe(maxShardBytes !== undefined);
    expect(keys.includes('lm_head.weight')).toBe(!config.tieWordEmbeddings);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    const { model: loaded, config: loadedConfig, tokenizer } = await loadPretrained(dir);
    expect(tokenizer).toBeUndefined();
    expect(loadedConfig).toEqual(config);
    const ours = model.stateDict();
    const theirs = loaded.stateDict();
    expect(Object.keys(theirs)).toEqual(Object.keys(ours));
    for (const name of Object.keys(ours)) expect(sameValues(theirs[name]!, ours[name]!), name).toBe(true);
    tf.tidy(() => {
      const ids = idsTensor(randomIds(2, 5, config.vocabSize, 3));
      expect(exactlyEqual(loaded.forward({ inputIds: ids }).logits, model.forward({ inputIds: ids }).logits)).toBe(true);
    });
    model.dispose();
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('writes the HF layout: HF names, [out, in] Linear weights, config.json and generation_config.json', async () => {
    const config = tinyLlama({ bosTokenId: 1, eosTokenId: 2 });
    const model = new CausalLM(config);
    const dir = freshDir('layout');
    await savePretrained(model, dir);
    const { tensors, metadata } = await loadShardedSafetensors(dir);
    try {
      expect(metadata.format).toBe('pt');
      const q = tensors['model.layers.0.self_attn.q_proj.weight']!;
      const down = tensors['model.layers.1.mlp.down_proj.weight']!;
      expect(q.shape).toEqual([32, 32]);
      expect(down.shape).toEqual([32, 64]); // [out = hidden, in = intermediate]
      expect(tensors['lm_head.weight']!.shape).toEqual([64, 32]);
      const ours = model.stateDict()['model.layers.1.mlp.down_proj.weight']!.arraySync() as number[][]; // [64, 32]
      const file = down.arraySync() as number[][];
      for (let i = 0; i < 64; i++) for (let o = 0; o < 32; o++) expect(file[o]![i]).toBe(ours[i]![o]);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
      model.dispose();
    }
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(json).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'], num_key_value_heads: 2, torch_dtype: 'float32' });
    expect(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'))).toEqual({ bos_token_id: 1, eos_token_id: 2 });
  });
});

describe('loadPretrained / savePretrained (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('loads a hand-written HF checkpoint: each [out, in] weight lands transposed, inv_freq and a tied lm_head are skipped', async () => {
    const config = tinyLlama({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: true });
    const dir = freshDir('handwritten');
    const embed = randomMatrix(64, 32, new Rng(5));
    const weights = await writeHFCheckpoint(dir, config, {
      extra: {
        'model.embed_tokens.weight': embed,
        'lm_head.weight': embed, // some tied checkpoints store the head anyway
        'model.layers.0.self_attn.rotary_emb.inv_freq': [[1, 0.1, 0.01, 0.001]],
      },
    });
    const model = new CausalLM(config);
    try {
      const report = await loadPretrainedWeights(model, dir);
      expect(report.ignored.sort()).toEqual(['lm_head.weight', 'model.layers.0.self_attn.rotary_emb.inv_freq']);
      expect(report.missing).toEqual([]);
      expect(report.unexpected).toEqual([]);
      const state = model.stateDict();
      const q = state['model.layers.1.self_attn.q_proj.weight']!.arraySync() as number[][]; // [in, out]
      const hfQ = weights['model.layers.1.self_attn.q_proj.weight']!; // [out, in]
      for (let o = 0; o < 32; o++) for (let i = 0; i < 32; i++) expect(q[i]![o]).toBe(Math.fround(hfQ[o]![i]!));
      const bias = Array.from(state['model.layers.0.self_attn.k_proj.bias']!.dataSync());
      expect(bias).toEqual(weights['model.layers.0.self_attn.k_proj.bias']![0]!.map(Math.fround));
      const table = state['model.embed_tokens.weight']!.arraySync() as number[][];
      expect(table[7]).toEqual(embed[7]!.map(Math.fround));
    } finally {
      model.dispose();
    }
  });

  it('reports missing, unexpected and wrong-shape tensors together, under the files\' names, and assigns nothing', async () => {
    const config = tinyLlama();
    const dir = freshDir('misfit');
    await writeHFCheckpoint(dir, config, {
      drop: ['model.layers.1.mlp.up_proj.weight'],
      extra: { 'model.layers.0.mlp.fc_extra.weight': [[1, 2]] },
      reshape: { 'model.layers.0.self_attn.k_proj.weight': [32, 32] },
    });
    const model = new CausalLM(config);
    const before = model.stateDict()['model.norm.weight']!.dataSync().slice();
    try {
      const error = await loadPretrainedWeights(model, dir).catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toMatch(/missing \(1\): model\.layers\.1\.mlp\.up_proj\.weight/);
      expect(message).toMatch(/unexpected \(1\): model\.layers\.0\.mlp\.fc_extra\.weight/);
      expect(message).toMatch(/wrong shape \(1\): model\.layers\.0\.self_attn\.k_proj\.weight: the config implies \[16, 32\], the file has \[32, 32\]/);
      expect(message).toMatch(/config\.json/);
      expect(Array.from(model.stateDict()['model.norm.weight']!.dataSync())).toEqual(Array.from(before));

      // Non-strict tolerates missing and unexpected tensors, never a wrong shape.
      await expect(loadPretrainedWeights(model, dir, { strict: false })).rejects.toThrow(/wrong shape \(1\)/);
      const partial = freshDir('partial');
      await writeHFCheckpoint(partial, config, {
        drop: ['model.layers.1.mlp.up_proj.weight'],
        extra: { 'model.layers.0.mlp.fc_extra.weight': [[1, 2]] },
      });
      const keep = model.stateDict()['model.layers.1.mlp.up_proj.weight']!.dataSync().slice();
      const report = await loadPretrainedWeights(model, partial, { strict: false });
      expect(report.missing).toEqual(['model.layers.1.mlp.up_proj.weight']);
      expect(report.unexpected).toEqual(['model.layers.0.mlp.fc_extra.weight']);
      expect(Array.from(model.stateDict()['model.layers.1.mlp.up_proj.weight']!.dataSync())).toEqual(Array.from(keep));
      expect(Array.from(model.stateDict()['model.norm.weight']!.dataSync())).not.toEqual(Array.from(before));
    } finally {
      model.dispose();
    }
  });

  it('names the likely cause: an absent untied head, a tied head that differs, biases the config lacks', async () => {
    const noHead = freshDir('nohead');
    await writeHFCheckpoint(noHead, tinyLlama(), { drop: ['lm_head.weight'] });
    await expect(loadPretrained(noHead)).rejects.toThrow(/missing \(1\): lm_head\.weight[\s\S]*"tie_word_embeddings": true/);

    const differs = freshDir('differs');
    await writeHFCheckpoint(differs, tinyLlama({ tieWordEmbeddings: true }), { extra: { 'lm_head.weight': randomMatrix(64, 32, new Rng(9)) } });
    await expect(loadPretrained(differs)).rejects.toThrow(/lm_head\.weight that differs from model\.embed_tokens\.weight.*tie_word_embeddings/);

    const odd = freshDir('odd-head');
    await writeHFCheckpoint(odd, tinyLlama({ tieWordEmbeddings: true }), { extra: { 'lm_head.weight': randomMatrix(64, 16, new Rng(9)) } });
    await expect(loadPretrained(odd)).rejects.toThrow(/unexpected \(1\): lm_head\.weight[\s\S]*"tie_word_embeddings": true/);

    const biased = freshDir('biased');
    await writeHFCheckpoint(biased, tinyLlama(), { extra: { 'model.layers.0.self_attn.q_proj.bias': [new Array(32).fill(0.1)] } });
    await expect(loadPretrained(biased)).rejects.toThrow(/unexpected \(1\): model\.layers\.0\.self_attn\.q_proj\.bias[\s\S]*attention_bias/);
  });

  it('gives clear errors for a wrong config key, missing files, PyTorch .bin weights and Hub ids', async () => {
    const before = tf.memory().numTensors;
    const dir = freshDir('badconfig');
    await writeHFCheckpoint(dir, tinyLlama());
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, num_attention_heads: '4' }));
    await expect(loadPretrained(dir)).rejects.toThrow(/"num_attention_heads" must be an integer, got "4"/);
    writeFileSync(join(dir, 'config.json'), '{ not json');
    await expect(loadPretrained(dir)).rejects.toThrow(/config\.json is not valid JSON/);
    rmSync(join(dir, 'config.json'));
    await expect(loadPretrained(dir)).rejects.toThrow(/has no config\.json/);

    const binOnly = freshDir('bin');
    mkdirSync(binOnly);
    writeFileSync(join(binOnly, 'config.json'), JSON.stringify(configToHF(tinyLlama())));
    writeFileSync(join(binOnly, 'pytorch_model.bin'), 'pickle');
    await expect(loadPretrained(binOnly)).rejects.toThrow(/neither model\.safetensors nor .*pytorch_model\.bin.*safe_serialization=True/);

    // A Hub id that is no local folder is downloaded (checkpoint-hub.test.ts); offline, the error says what is missing.
    await expect(loadPretrained('HuggingFaceTB/SmolLM-135M', { offline: true, cacheDir: freshDir('empty-cache') })).rejects.toThrow(
      /HuggingFaceTB\/SmolLM-135M@main is not in the cache .* offline mode is on .*\(no local folder HuggingFaceTB\/SmolLM-135M exists either\)/,
    );
    await expect(loadPretrained(join(root, 'nowhere'))).rejects.toThrow(/is not a directory/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('saves F16 and BF16 files: every value is the nearest representable one, torch_dtype says which', async () => {
    const model = new CausalLM(tinyLlama());
    try {
      for (const dtype of ['F16', 'BF16'] as const) {
        const dir = freshDir(dtype);
        await savePretrained(model, dir, { dtype });
        expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
        const { model: loaded } = await loadPretrained(dir);
        const ours = model.stateDict();
        const theirs = loaded.stateDict();
        for (const name of Object.keys(ours)) {
          const a = ours[name]!.dataSync();
          const b = theirs[name]!.dataSync();
          for (let i = 0; i < a.length; i++) {
            const x = a[i]!;
            const y = b[i]!;
            if (dtype === 'BF16') {
              expect(f32Bits(y) & 0xffff).toBe(0); // a bfloat16 value
              expect(Math.abs(y - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
            } else {
              expect(Math.abs(y - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
            }
          }
        }
        loaded.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('reads eos ids from generation_config.json and keeps them through a save', async () => {
    const dir = freshDir('generation');
    await writeHFCheckpoint(dir, tinyLlama({ eosTokenId: 2 }));
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 7], temperature: 0.6 }));
    const { model, config, generationConfig } = await loadPretrained(dir);
    try {
      expect(config.eosTokenId).toEqual([2, 7]);
      expect(generationConfig?.temperature).toBe(0.6);
      const saved = freshDir('generation-saved');
      await savePretrained(model, saved);
      expect((await loadPretrained(saved).then((r) => (r.model.dispose(), r.config))).eosTokenId).toEqual([2, 7]);
    } finally {
      model.dispose();
    }
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 999 }));
    await expect(loadPretrained(dir)).rejects.toThrow(/generation_config\.json: "eos_token_id" must be .* \[0, 64\), got 999/);
  });

  it('loads the tokenizer files next to the weights and saves them back', async () => {
    const files = byteLevelBpeFiles();
    const vocab = Object.keys(files.vocab).length + 3; // BPE vocabulary plus three added special tokens
    const config = tinyLlama({ vocabSize: vocab });
    const dir = freshDir('tokenizer');
    await writeHFCheckpoint(dir, config);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
    const { model, tokenizer } = await loadPretrained(dir);
    try {
      expect(tokenizer).toBeInstanceOf(HFTokenizer);
      const ids = tokenizer!.encode('hello the world');
      const saved = freshDir('tokenizer-saved');
      await savePretrained(model, saved, { tokenizer: tokenizer! });
      expect(existsSync(join(saved, 'tokenizer.json'))).toBe(true);
      const again = await loadPretrained(saved);
      expect(again.tokenizer!.encode('hello the world')).toEqual(ids);
      again.model.dispose();
      const without = await loadPretrained(saved, { tokenizer: false });
      expect(without.tokenizer).toBeUndefined();
      without.model.dispose();
    } finally {
      model.dispose();
    }
  });

  it('extended models: save writes only the base LLM; a plain checkpoint loads into the extended model', async () => {
    const config = tinyLlama({ numLayers: 3 });
    const plain = new CausalLM(config);
    tf.tidy(() => perturbNorms(plain));
    const plainDir = freshDir('plain');
    const plainKeys = (await savePretrained(plain, plainDir)).keys;

    const fused = new CausalLM(config);
    fused.insertBlock(() => new GatedBlock(32), { layer: { every: 2 } });
    fused.addPrefixAdapter('all', { length: 2 });
    fused.routeByModality({ numModalities: 2, layers: [0], parts: ['mlp'] });
    fused.addHead('probe', new ProbeHead(32, 3));
    try {
      const extension = fused.extensionParameterNames();
      expect(extension.length).toBeGreaterThan(0);
      const extensionBefore = extension.map((name) => fused.stateDict()[name]!.dataSync().slice());

      const report = await loadPretrainedWeights(fused, plainDir); // strict: the base must be complete
      expect(report.loaded.sort()).toEqual([...plainKeys].sort());
      const ours = fused.stateDict();
      for (const [name, tensor] of Object.entries(plain.stateDict())) expect(sameValues(ours[name]!, tensor), name).toBe(true);
      extension.forEach((name, i) => expect(Array.from(ours[name]!.dataSync()), name).toEqual(Array.from(extensionBefore[i]!)));
      tf.tidy(() => {
        const ids = idsTensor(randomIds(2, 6, 64, 4));
        expect(exactlyEqual(fused.forward({ inputIds: ids }).logits, plain.forward({ inputIds: ids }).logits)).toBe(true);
      });

      const fusedDir = freshDir('fused');
      const { keys } = await savePretrained(fused, fusedDir);
      expect(keys.sort()).toEqual([...plainKeys].sort());
      const reloaded = await loadPretrained(fusedDir); // a plain model, strict
      for (const [name, tensor] of Object.entries(reloaded.model.stateDict())) expect(sameValues(tensor, ours[name]!), name).toBe(true);
      reloaded.model.dispose();
    } finally {
      plain.dispose();
      fused.dispose();
    }
  });

  it('refuses to save a model HF cannot express, before writing anything', async () => {
    const model = new CausalLM(tinyLlama({ qkNorm: 'layer' })); // Chameleon's LayerNorm QK-norm on a llama
    const dir = freshDir('inexpressible');
    try {
      await expect(savePretrained(model, dir)).rejects.toThrow(/qkNorm "layer" cannot be written as an HF "llama" config/);
      expect(existsSync(dir)).toBe(false);
    } finally {
      model.dispose();
    }
  });
});

describe('loadPretrained checks config.json against the weights before building anything', () => {
  beforeAll(() => setupTestBackend('cpu'));

  /** A tiny valid checkpoint whose config.json is then replaced by `patch` over the real one. */
  async function withConfig(label: string, patch: Record<string, unknown>, config = tinyLlama()): Promise<string> {
    const dir = freshDir(label);
    await writeHFCheckpoint(dir, config);
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...json, ...patch }));
    return dir;
  }

  it('computes from the config alone the same tensors a built model expects', () => {
    const configs = [
      tinyLlama(),
      tinyLlama({ tieWordEmbeddings: true, numKvHeads: 1 }),
      tinyLlama({ modelType: 'qwen2', attentionBias: true }),
      tinyLlama({ modelType: 'qwen3', qkNorm: 'rms', headDim: 16, numLayers: 3 }),
      tinyLlama({ attentionBias: true, attentionOutBias: true, mlpBias: true, numHeads: 2, numKvHeads: 2 }),
    ];
    for (const config of configs) {
      const model = new CausalLM(config);
      try {
        const sorted = (map: Map<string, number[]>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1));
        expect(sorted(expectedShapesFromConfig(config))).toEqual(sorted(expectedHFShapes(model)));
      } finally {
        model.dispose();
      }
    }
  });

  it('names config.json, the field, the claimed value and what the weights say, allocating nothing', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ vocab_size: 50_000_000 }, /config\.json says "vocab_size": 50000000, but model\.embed_tokens\.weight in model\.safetensors is \[64, 32\] where the config implies \[50000000, 32\], which means "vocab_size": 64/],
      [{ num_hidden_layers: 100_000 }, /config\.json says "num_hidden_layers": 100000, but the weights in .* hold layers model\.layers\.0 to model\.layers\.1 \(2\)/],
      [{ intermediate_size: 1_000_000 }, /config\.json says "intermediate_size": 1000000, but model\.layers\.0\.mlp\.gate_proj\.weight in model\.safetensors is \[64, 32\].*which means "intermediate_size": 64/],
      [{ hidden_size: 4096, num_attention_heads: 128 }, /config\.json says "hidden_size": 4096, but model\.embed_tokens\.weight in model\.safetensors is \[64, 32\].*which means "hidden_size": 32/],
      [{ num_key_value_heads: 4 }, /config\.json says "num_key_value_heads" x head_dim = 4 x 8, but model\.layers\.0\.self_attn\.k_proj\.weight in model\.safetensors is \[16, 32\] where the config implies \[32, 32\]/],
    ];
    const before = tf.memory().numTensors;
    for (const [patch, message] of cases) {
      const dir = await withConfig('claims', patch);
      const error = await loadPretrained(dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(join(dir, 'config.json'));
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('non-strict: refuses a model far larger than its weights, and points at loadPretrainedWeights for that', async () => {
    const dir = await withConfig('nonstrict', { num_hidden_layers: 100_000 });
    // tinyLlama: a layer is 2 norms of 32, q and o 32x32, k and v 16x32, 3 MLP matrices 64x32 = 9280 parameters in
    // 9 tensors; embedding and head 64x32 and the final norm 32 add 4128 in 3.
    await expect(loadPretrained(dir, { strict: false })).rejects.toThrow(
      /config\.json describes a model of 928004128 parameters \(3\.7 GB as float32\) in 900003 tensors, more than 4 times what the weights in .* hold for it \(21 matching tensors, .*, 2 layers\); it claims "num_hidden_layers": 100000.*loadPretrainedWeights\(model, dir, \{ strict: false \}\)/,
    );
    // A partial checkpoint of a model its files mostly describe still loads.
    const partial = freshDir('partial-ok');
    await writeHFCheckpoint(partial, tinyLlama(), { drop: ['model.layers.1.mlp.up_proj.weight'] });
    const { model } = await loadPretrained(partial, { strict: false });
    expect(model.config.numLayers).toBe(2);
    model.dispose();
  });

  it('refuses a tensor longer than Node.js can allocate and sizes JSON cannot hold exactly', async () => {
    // Without the embedding and head in the files, nothing contradicts the vocabulary; the array limit does.
    const headless = freshDir('headless');
    await writeHFCheckpoint(headless, tinyLlama(), { drop: ['model.embed_tokens.weight', 'lm_head.weight'] });
    const json = JSON.parse(readFileSync(join(headless, 'config.json'), 'utf8'));
    writeFileSync(join(headless, 'config.json'), JSON.stringify({ ...json, vocab_size: 2 ** 31 - 1, hidden_size: 32 }));
    await expect(loadPretrained(headless, { strict: false })).rejects.toThrow(
      /config\.json implies model\.embed_tokens\.weight of 68719476704 elements, more than the largest array Node\.js can allocate/,
    );
    const unsafe = await withConfig('unsafe', { max_position_embeddings: 2 ** 60 });
    await expect(loadPretrained(unsafe)).rejects.toThrow(/config\.json \(model_type "llama"\): "max_position_embeddings" must be an integer of magnitude at most 9007199254740991, got 1152921504606847000/);
    const huge = await withConfig('huge', { vocab_size: 2 ** 31 });
    await expect(loadPretrained(huge)).rejects.toThrow(/config\.json \(model_type "llama"\) describes an invalid model: [\s\S]*vocabSize must be at most 2147483647, got 2147483648/);
  });

  it('names the index file whatever core throws for it (a weight_map nested 5000 deep)', async () => {
    const dir = freshDir('deep-index');
    await writeHFCheckpoint(dir, tinyLlama());
    writeFileSync(join(dir, 'model.safetensors.index.json'), `{"weight_map": {"a": ${'['.repeat(5000)}1${']'.repeat(5000)}}}`);
    const error = await loadPretrained(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(join(dir, 'model.safetensors.index.json'));
  });

  it('fails in well under a second and 200 MB in a fresh process (built dist; measured with maxRSS)', async () => {
    const dist = join(__dirname, '..', 'dist', 'index.js');
    const source = join(__dirname, '..', 'src', 'checkpoint', 'load-pretrained.ts');
    if (!existsSync(dist) || statSync(dist).mtimeMs < statSync(source).mtimeMs) {
      throw new Error(`${dist} is missing or older than src: run \`npx turbo run build --filter=@chimera/llm\` first (npm test does)`);
    }
    const dirs = [
      await withConfig('child-layers', { num_hidden_layers: 100_000 }),
      await withConfig('child-vocab', { vocab_size: 50_000_000 }),
      await withConfig('child-nonstrict', { num_hidden_layers: 100_000 }),
    ];
    // Every call in one process: maxRSS is the peak since the start, so each delta bounds that call and the ones before.
    const script = `
      import * as tf from '@tensorflow/tfjs';
      import { loadPretrained } from ${JSON.stringify(pathToFileURL(dist).href)};
      await tf.setBackend('cpu');
      const dirs = ${JSON.stringify(dirs)};
      const baseline = process.resourceUsage().maxRSS;
      const results = [];
      for (const [i, dir] of dirs.entries()) {
        const start = performance.now();
        const error = await loadPretrained(dir, { strict: i < 2 }).then(() => null, (e) => e);
        results.push({ ms: performance.now() - start, rssKB: process.resourceUsage().maxRSS - baseline, message: error?.message });
      }
      console.log(JSON.stringify({ baselineKB: baseline, results }));
    `;
    const { stdout } = await execFileAsync(process.execPath, ['--max-old-space-size=256', '--input-type=module', '-e', script], {
      cwd: join(__dirname, '..'),
      timeout: 60_000, // a regression would climb for minutes (the issue saw 6 GB); stop it
    });
    const { baselineKB, results } = JSON.parse(stdout.trim().split('\n').pop()!) as {
      baselineKB: number;
      results: { ms: number; rssKB: number; message?: string }[];
    };
    console.info(`hostile configs in a fresh process: baseline ${Math.round(baselineKB / 1024)} MB; ` +
      results.map((r) => `${r.ms.toFixed(1)} ms, +${(r.rssKB / 1024).toFixed(1)} MB`).join('; '));
    expect(results.map((r) => r.message)).toEqual([
      expect.stringMatching(/"num_hidden_layers": 100000, but the weights .* hold layers model\.layers\.0 to model\.layers\.1/),
      expect.stringMatching(/"vocab_size": 50000000, but model\.embed_tokens\.weight in model\.safetensors is \[64, 32\]/),
      expect.stringMatching(/describes a model of 928004128 parameters/),
    ]);
    // The acceptance is 1 s; 5 s leaves a 5x margin for a loaded machine (the idle figure is a few ms).
    for (const r of results) expect(r.ms).toBeLessThan(5000);
    expect(Math.max(...results.map((r) => r.rssKB))).toBeLessThan(200 * 1024);
  });
});
