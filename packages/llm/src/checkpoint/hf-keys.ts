/**
 * The key-remap table between Hugging Face Llama-family checkpoints (LlamaForCausalLM, which SmolLM uses,
 * Qwen2ForCausalLM and Qwen3ForCausalLM) and CausalLM's state dict. The names are the same on both sides; what
 * the table adds is the layout: HF stores every nn.Linear weight [out, in], Chimera [in, out], so q/k/v/o,
 * gate/up/down and lm_head are transposed at the boundary. embed_tokens ([V, D] on both sides), norms, QK-norms
 * and biases are copied as they are. Rotary `inv_freq` buffers (saved by older transformers versions) are
 * recomputed from the config, so they are dropped on import.
 */
import type { Layout, RemapRule, RemapTable } from '@chimera/core';

/** Every tensor of one decoder layer, as `[name under model.layers.{i}., layout]`. */
const LAYER_TENSORS: readonly (readonly [string, Layout | undefined])[] = [
  ['input_layernorm.weight', undefined],
  ['self_attn.q_proj.weight', 'linear'],
  ['self_attn.k_proj.weight', 'linear'],
  ['self_attn.v_proj.weight', 'linear'],
  ['self_attn.o_proj.weight', 'linear'],
  ['self_attn.q_proj.bias', undefined], // Qwen2 (and Llama's attention_bias)
  ['self_attn.k_proj.bias', undefined],
  ['self_attn.v_proj.bias', undefined],
  ['self_attn.o_proj.bias', undefined], // Llama's attention_bias
  ['self_attn.q_norm.weight', undefined], // Qwen3 QK-norm, over head_dim
  ['self_attn.k_norm.weight', undefined],
  ['post_attention_layernorm.weight', undefined],
  ['mlp.gate_proj.weight', 'linear'],
  ['mlp.up_proj.weight', 'linear'],
  ['mlp.down_proj.weight', 'linear'],
  ['mlp.gate_proj.bias', undefined], // Llama's mlp_bias
  ['mlp.up_proj.bias', undefined],
  ['mlp.down_proj.bias', undefined],
];

function rule(name: string, layout: Layout | undefined): RemapRule {
  return layout === undefined ? { external: name, internal: name } : { external: name, internal: name, layout };
}

/** HF (external) <-> CausalLM (internal) for Llama, SmolLM, Qwen2 and Qwen3 causal LMs. */
export const LLAMA_HF_REMAP: RemapTable = {
  rules: [
    rule('model.embed_tokens.weight', undefined),
    ...LAYER_TENSORS.map(([name, layout]) => rule(`model.layers.{i}.${name}`, layout)),
    rule('model.norm.weight', undefined),
    rule('lm_head.weight', 'linear'),
  ],
  ignoreExternal: ['**.rotary_emb.inv_freq'],
  unmatched: 'error',
};
