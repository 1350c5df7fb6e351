// The HF <-> Chimera remap table: every CausalLM key of every supported family maps to HF's name, exactly the
// Linear weights change layout, and the mapping inverts.
import { describe, it, expect, beforeAll } from 'vitest';
import { exportStateDict, importStateDict, planRemap } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { LLAMA_HF_REMAP } from '../src/checkpoint/hf-keys';
import { tinyLlama, type LlamaConfig } from '../src/config';
import { CausalLM } from '../src/model/causal-lm';

/** HF's parameter names for a config, written out from transformers' module tree (LlamaForCausalLM & co.). */
function hfNames(config: LlamaConfig): string[] {
  const names = ['model.embed_tokens.weight'];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    names.push(`${p}input_layernorm.weight`);
    for (const proj of ['q_proj', 'k_proj', 'v_proj']) {
      names.push(`${p}self_attn.${proj}.weight`);
      if (config.attentionBias) names.push(`${p}self_attn.${proj}.bias`);
    }
    names.push(`${p}self_attn.o_proj.weight`);
    if (config.attentionOutBias) names.push(`${p}self_attn.o_proj.bias`);
    if (config.qkNorm) names.push(`${p}self_attn.q_norm.weight`, `${p}self_attn.k_norm.weight`);
    names.push(`${p}post_attention_layernorm.weight`);
    for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
      names.push(`${p}mlp.${proj}.weight`);
      if (config.mlpBias) names.push(`${p}mlp.${proj}.bias`);
    }
  }
  names.push('model.norm.weight');
  if (!config.tieWordEmbeddings) names.push('lm_head.weight');
  return names;
}

const FAMILIES: [string, LlamaConfig][] = [
  ['llama (attention and mlp biases, untied)', tinyLlama({ attentionBias: true, attentionOutBias: true, mlpBias: true })],
  ['smollm (llama, tied)', tinyLlama({ tieWordEmbeddings: true })],
  ['qwen2 (q/k/v biases, tied)', tinyLlama({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: true })],
  ['qwen3 (QK-norm, explicit head_dim)', tinyLlama({ modelType: 'qwen3', qkNorm: 'rms', headDim: 16 })],
];

describe('LLAMA_HF_REMAP', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it.each(FAMILIES)('%s: every key maps to HF\'s name; exactly the Linear weights are transposed', (_, config) => {
    const model = new CausalLM(config);
    try {
      const names = Object.keys(model.stateDict());
      const plan = planRemap(names, LLAMA_HF_REMAP, 'export');
      expect(plan.dropped).toEqual([]);
      expect(plan.entries.map((e) => e.target).sort()).toEqual(hfNames(config).sort());
      for (const { source, target, permutation } of plan.entries) {
        expect(target).toBe(source);
        const isLinear = /(_proj|lm_head)\.weight$/.test(source);
        expect(permutation).toEqual(isLinear ? [1, 0] : null);
      }
      const back = planRemap(plan.entries.map((e) => e.target), LLAMA_HF_REMAP, 'import');
      expect(back.entries.map((e) => e.target)).toEqual(names);
    } finally {
      model.dispose();
    }
  });

  it('exports [in, out] Linear weights as [out, in] and imports them back unchanged', () => {
    const model = new CausalLM(tinyLlama({ modelType: 'qwen2', attentionBias: true }));
    const exported = exportStateDict(model.stateDict(), LLAMA_HF_REMAP);
    const imported = importStateDict(exported, LLAMA_HF_REMAP);
    try {
      const ours = model.stateDict()['model.layers.1.self_attn.k_proj.weight']!; // [in 32, out 16]
      const theirs = exported['model.layers.1.self_attn.k_proj.weight']!;
      expect(ours.shape).toEqual([32, 16]);
      expect(theirs.shape).toEqual([16, 32]);
      const a = ours.arraySync() as number[][];
      const b = theirs.arraySync() as number[][];
      for (let i = 0; i < 32; i++) for (let o = 0; o < 16; o++) expect(b[o]![i]).toBe(a[i]![o]);
      expect(exported['model.embed_tokens.weight']!.shape).toEqual([64, 32]); // [V, D] on both sides
      expect(exported['lm_head.weight']!.shape).toEqual([64, 32]);
      for (const [name, tensor] of Object.entries(model.stateDict())) {
        expect(Array.from(imported[name]!.dataSync())).toEqual(Array.from(tensor.dataSync()));
      }
    } finally {
      for (const t of [...Object.values(exported), ...Object.values(imported)]) t.dispose();
      model.dispose();
    }
  });

  it('drops the rotary inv_freq buffers of older checkpoints and rejects unknown keys', () => {
    const plan = planRemap(
      ['model.layers.0.self_attn.rotary_emb.inv_freq', 'model.rotary_emb.inv_freq', 'model.norm.weight'],
      LLAMA_HF_REMAP,
      'import',
    );
    expect(plan.dropped).toEqual(['model.layers.0.self_attn.rotary_emb.inv_freq', 'model.rotary_emb.inv_freq']);
    expect(plan.entries.map((e) => e.target)).toEqual(['model.norm.weight']);
    expect(() => planRemap(['model.layers.0.mlp.fc1.weight'], LLAMA_HF_REMAP, 'import')).toThrow(/no rule matches.*mlp\.fc1/);
  });
});
