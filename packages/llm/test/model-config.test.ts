import { describe, it, expect } from 'vitest';
import { configFromHF, configToHF, eosTokenIds, headDimOf, llamaConfig, tinyLlama, validateConfig, type LlamaConfig } from '../src/config';

/** A SmolLM-135M-style config.json, with keys that do not change the math. */
const smolLM = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.02,
  intermediate_size: 1536,
  max_position_embeddings: 2048,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  vocab_size: 49152,
};

const qwen2 = {
  architectures: ['Qwen2ForCausalLM'],
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  intermediate_size: 4864,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

describe('config', () => {
  it('reads a SmolLM (llama) config.json, ignoring keys that do not change the model', () => {
    const c = configFromHF(smolLM);
    expect(c).toEqual({
      modelType: 'llama',
      vocabSize: 49152,
      hiddenSize: 576,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      intermediateSize: 1536,
      headDim: null,
      ropeTheta: 10000,
      ropeScaling: null,
      mropeSections: null,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: true,
      qkNorm: null,
      attentionBias: false,
      attentionOutBias: false,
      mlpBias: false,
      maxPositionEmbeddings: 2048,
      padTokenId: null,
      bosTokenId: 0,
      eosTokenId: 0,
    } satisfies LlamaConfig);
    expect(headDimOf(c)).toBe(64);
  });

  it('Qwen2 has q/k/v biases and no o_proj bias; Qwen3 has RMS QK-norm and an explicit head_dim; defaults follow HF', () => {
    const q2 = configFromHF(qwen2);
    expect([q2.attentionBias, q2.attentionOutBias, q2.qkNorm, q2.maxPositionEmbeddings]).toEqual([true, false, null, 32768]);
    const q3 = configFromHF({ ...qwen2, model_type: 'qwen3', head_dim: 128, attention_bias: false, max_position_embeddings: 40960 });
    expect([q3.attentionBias, q3.attentionOutBias, q3.qkNorm, headDimOf(q3)]).toEqual([false, false, 'rms', 128]);
    const minimal = configFromHF({ model_type: 'llama', vocab_size: 10, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16 });
    expect([minimal.numKvHeads, minimal.ropeTheta, minimal.rmsNormEps, minimal.tieWordEmbeddings, minimal.maxPositionEmbeddings]).toEqual([2, 10000, 1e-6, false, 2048]);
  });

  it('reads rope scaling (llama3, linear), M-RoPE sections, eos lists and pad -1', () => {
    const llama3 = configFromHF({
      ...smolLM,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      eos_token_id: [1, 2, 3],
      pad_token_id: -1,
    });
    expect(llama3.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(eosTokenIds(llama3)).toEqual([1, 2, 3]);
    expect(llama3.padTokenId).toBeNull();
    expect(configFromHF({ ...smolLM, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    const mrope = configFromHF({ ...qwen2, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] }, hidden_size: 1792, num_attention_heads: 14 });
    expect(mrope.mropeSections).toEqual([16, 24, 24]);
    expect(() => configFromHF({ ...qwen2, rope_scaling: { type: 'mrope', mrope_section: [16, 24] } })).toThrow(/mropeSections must be positive integers summing to headDim \/ 2 = 32, got \[16,24\]/);
  });

  it('errors name the key and the value found', () => {
    const without = (key: string) => Object.fromEntries(Object.entries(smolLM).filter(([k]) => k !== key));
    expect(() => configFromHF(without('vocab_size'))).toThrow(/required key "vocab_size" is missing/);
    expect(() => configFromHF({ ...smolLM, hidden_size: '576' })).toThrow(/"hidden_size" must be an integer, got "576"/);
    expect(() => configFromHF({ ...smolLM, tie_word_embeddings: 'yes' })).toThrow(/"tie_word_embeddings" must be true or false, got "yes"/);
    expect(() => configFromHF({ ...smolLM, model_type: 'gpt2' })).toThrow(/model_type "gpt2" is not supported; supported: "llama"/);
    expect(() => configFromHF({ ...smolLM, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu" is not supported/);
    expect(() => configFromHF({ ...smolLM, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_type 'yarn' is not supported.*"yarn"/);
    expect(() => configFromHF({ ...smolLM, num_key_value_heads: 4 })).toThrow(/numHeads \(9\) must be a multiple of numKvHeads \(4\)/);
    expect(() => configFromHF({ ...smolLM, eos_token_id: 49152 })).toThrow(/eosTokenId must be an integer in \[0, vocabSize = 49152\)/);
    expect(() => configFromHF({ ...qwen2, use_sliding_window: true })).toThrow(/sliding-window attention is not implemented/);
    expect(() => configFromHF([1, 2])).toThrow(/expected the parsed config.json object/);
  });

  it('refuses what cannot be read exactly or built: unsafe integers, sizes past int32, NaN-making rope factors', () => {
    expect(() => configFromHF({ ...smolLM, vocab_size: 2 ** 53 + 2 })).toThrow(
      /config\.json \(model_type "llama"\): "vocab_size" must be an integer of magnitude at most 9007199254740991, got 9007199254740994/,
    );
    expect(() => configFromHF({ ...smolLM, bos_token_id: 1e300 })).toThrow(/"bos_token_id" must be an integer of magnitude at most/);
    expect(() => configFromHF({ ...smolLM, eos_token_id: [1, 2 ** 60] })).toThrow(/"eos_token_id" must be an integer or a list of integers/);
    expect(() => configFromHF({ ...smolLM, num_hidden_layers: 2 ** 31 })).toThrow(/numLayers must be at most 2147483647, got 2147483648/);
    expect(configFromHF({ ...smolLM, max_position_embeddings: 2 ** 40 }).maxPositionEmbeddings).toBe(2 ** 40); // never allocated
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    expect(() => configFromHF({ ...smolLM, rope_scaling: { ...llama3, factor: 0.5 } })).toThrow(/rope_scaling: factor must be a finite number >= 1, got 0\.5/);
    expect(() => configFromHF({ ...smolLM, rope_scaling: { ...llama3, high_freq_factor: 1 } })).toThrow(
      /rope_scaling: llama3 needs 0 < low_freq_factor < high_freq_factor, got 1 and 1/,
    );
    expect(() => configFromHF({ ...smolLM, rope_scaling: { ...llama3, original_max_position_embeddings: 0.5 } })).toThrow(
      /original_max_position_embeddings must be a positive integer, got 0\.5/,
    );
    // The error names the file it was given.
    expect(() => configFromHF({ ...smolLM, hidden_size: -1 }, '/models/x/config.json')).toThrow(/^\/models\/x\/config\.json \(model_type "llama"\) describes an invalid model/);
  });

  it('reads only own keys and previews hostile values without overflowing the stack', () => {
    // As JSON.parse makes them: "__proto__" and "constructor" are own keys here, not the prototype.
    const parsed = JSON.parse(
      JSON.stringify(smolLM).replace('{', '{"__proto__":{"vocab_size":7},"constructor":{"name":"x"},"toString":1,'),
    ) as Record<string, unknown>;
    expect(configFromHF(parsed).vocabSize).toBe(49152);
    const missing = JSON.parse('{"__proto__":{"vocab_size":64},"model_type":"llama","hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4}');
    expect(() => configFromHF(missing)).toThrow(/required key "vocab_size" is missing/);
    const ropeProto = JSON.parse('{"__proto__":{"factor":2},"rope_type":"linear"}');
    expect(() => configFromHF({ ...smolLM, rope_scaling: ropeProto })).toThrow(/expected a number for 'factor', got undefined/);
    const deep = JSON.parse(`${'['.repeat(5000)}1${']'.repeat(5000)}`);
    expect(() => configFromHF({ ...smolLM, hidden_size: deep })).toThrow(/"hidden_size" must be an integer, got \[\[\[\[\.\.\.\]\]\]\]/);
    expect(() => configFromHF({ ...smolLM, rope_scaling: { type: 'linear', factor: deep } })).toThrow(
      /config\.json: rope_scaling\.factor must be a number, got \[\[\[\[\.\.\.\]\]\]\]/,
    );
    expect(() => configFromHF(deep)).toThrow(/expected the parsed config\.json object, got \[\[\[\[\.\.\.\]\]\]\]/);
  });

  it('configToHF and configFromHF round-trip; configs HF cannot express are refused', () => {
    const cases: LlamaConfig[] = [
      configFromHF(smolLM),
      configFromHF(qwen2),
      configFromHF({ ...qwen2, model_type: 'qwen3', head_dim: 128, attention_bias: true }),
      configFromHF({ ...smolLM, attention_bias: true, mlp_bias: true, pad_token_id: 5, eos_token_id: [1, 2] }),
      configFromHF({ ...smolLM, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }),
      tinyLlama({ mropeSections: [2, 1, 1], modelType: 'qwen2', attentionBias: true }),
    ];
    for (const c of cases) expect(configFromHF(JSON.parse(JSON.stringify(configToHF(c))))).toEqual(c);
    expect(configToHF(cases[0]!).architectures).toEqual(['LlamaForCausalLM']);
    expect(() => configToHF(tinyLlama({ qkNorm: 'layer' }))).toThrow(/qkNorm "layer" cannot be written as an HF "llama" config/);
    expect(() => configToHF(tinyLlama({ attentionBias: true }))).toThrow(/q\/k\/v biases without an o_proj bias/);
  });

  it('llamaConfig fills defaults; validateConfig lists every problem', () => {
    const c = llamaConfig({ vocabSize: 10, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 16 });
    expect([c.numKvHeads, c.modelType, c.tieWordEmbeddings, headDimOf(c)]).toEqual([2, 'llama', false, 4]);
    const bad = { ...c, hiddenSize: 9, numLayers: 0, numKvHeads: 3, rmsNormEps: 0 };
    let message = '';
    try {
      validateConfig(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/numLayers must be a positive integer, got 0/);
    expect(message).toMatch(/numHeads \(2\) must be a multiple of numKvHeads \(3\)/);
    expect(message).toMatch(/hiddenSize \(9\) is not divisible by numHeads \(2\); set headDim explicitly/);
    expect(message).toMatch(/rmsNormEps must be > 0/);
    expect(() => tinyLlama({ headDim: 5 })).toThrow(/head dim \(5\) must be even/);
  });
});
