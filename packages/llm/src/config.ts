/**
 * The Llama-family model config (Llama, SmolLM, Qwen2, Qwen3): sizes, attention layout, RoPE, norms, special
 * token ids. `llamaConfig({...})` fills defaults and validates; `configFromHF(json)` / `configToHF(config)`
 * translate HF's config.json (model_type llama / qwen2 / qwen3) both ways.
 *
 *   const config = llamaConfig({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64 });
 *   const fromFile = configFromHF(JSON.parse(readFileSync('config.json', 'utf8')));
 *
 * Reading HF configs is strict where a silent default would give a wrong model: a missing required key, a known
 * key of the wrong type or value, an unsupported model_type, activation or rope type is an error naming the key
 * and the file's value. Unknown keys are ignored (HF configs carry many that do not change the math).
 */
import { ropeScalingFromConfig, type QKNormKind, type RopeScaling } from '@chimera/core';

/** The HF model families a {@link LlamaConfig} round-trips to (`model_type` in config.json). */
export type LlamaModelType = 'llama' | 'qwen2' | 'qwen3';

/**
 * A Llama-family model's architecture (Llama, SmolLM, Qwen2, Qwen3), with HF config.json's fields under camelCase
 * names. Build one with {@link llamaConfig} or {@link configFromHF}.
 */
export interface LlamaConfig {
  /** Which HF family this config round-trips to (decides biases and the config.json layout). */
  modelType: LlamaModelType;
  /** Vocabulary size V (rows of embed_tokens). */
  vocabSize: number;
  /** Width D of the residual stream. */
  hiddenSize: number;
  /** Decoder layers. */
  numLayers: number;
  /** Query heads per attention layer. */
  numHeads: number;
  /** Key/value heads (GQA when fewer than numHeads; must divide it). */
  numKvHeads: number;
  /** Width of the SwiGLU feed-forward layer. */
  intermediateSize: number;
  /** Channels per head; hiddenSize / numHeads when null. */
  headDim: number | null;
  /** Base of the RoPE frequency ladder (10000 for Llama 2, 500000 for Llama 3). */
  ropeTheta: number;
  /** RoPE frequency scaling for long contexts ('linear' or 'llama3'), or null. */
  ropeScaling: RopeScaling | null;
  /** M-RoPE (Qwen2-VL): rotating pairs per position axis (t, h, w), summing to headDim / 2; null for 1-D RoPE. */
  mropeSections: number[] | null;
  /** Epsilon of every RMSNorm. */
  rmsNormEps: number;
  /** The LM head reuses the embedding table (no `lm_head.weight`). */
  tieWordEmbeddings: boolean;
  /** Per-head norm of queries and keys before RoPE: 'rms' (Qwen3) or 'layer' (Chameleon); null for none. */
  qkNorm: QKNormKind | null;
  /** Biases on q/k/v projections (Qwen2). */
  attentionBias: boolean;
  /** Bias on o_proj (Llama's attention_bias sets both). */
  attentionOutBias: boolean;
  /** Biases on gate/up/down projections (Llama's mlp_bias). */
  mlpBias: boolean;
  /** Longest sequence (cache included) the model accepts. */
  maxPositionEmbeddings: number;
  /** Padding id, or null when the model has none. */
  padTokenId: number | null;
  /** Beginning-of-sequence id, or null. */
  bosTokenId: number | null;
  /** One id or several (Llama 3 stops on any of three). */
  eosTokenId: number | number[] | null;
}

/** The sizes a config must state; everything else has a default. */
export type LlamaConfigInput = Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'intermediateSize'> &
  Partial<LlamaConfig>;

/** Fills defaults (MHA, theta 10000, eps 1e-6, untied, no biases, 2048 positions) and validates. */
export function llamaConfig(input: LlamaConfigInput): LlamaConfig {
  const config = {
    modelType: 'llama',
    numKvHeads: input.numHeads,
    headDim: null,
    ropeTheta: 10000,
    ropeScaling: null,
    mropeSections: null,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: false,
    qkNorm: null,
    attentionBias: false,
    attentionOutBias: false,
    mlpBias: false,
    maxPositionEmbeddings: 2048,
    padTokenId: null,
    bosTokenId: null,
    eosTokenId: null,
    ...withoutUndefined(input),
  } as LlamaConfig;
  validateConfig(config);
  return config;
}

/** A tiny config for tests and examples: vocab 64, width 32, 2 layers, 4 heads over 2 KV heads. */
export function tinyLlama(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return llamaConfig({
    vocabSize: 64,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 64,
    maxPositionEmbeddings: 256,
    ...overrides,
  });
}

/** Channels per attention head. */
export function headDimOf(config: LlamaConfig): number {
  return config.headDim ?? config.hiddenSize / config.numHeads;
}

/** The end-of-sequence ids as a list (empty when the config has none). */
export function eosTokenIds(config: LlamaConfig): number[] {
  const eos = config.eosTokenId;
  return eos === null ? [] : Array.isArray(eos) ? [...eos] : [eos];
}

/**
 * Largest size a config may give (vocabulary, widths, layers, heads): token ids and tensor dimensions are int32 in
 * TensorFlow.js, so anything above cannot be built. Whether a model of legal sizes fits in memory is checked where
 * it is built from a file (loadPretrained), against the weights.
 */
export const MAX_CONFIG_SIZE = 2 ** 31 - 1;

/** Throws one error listing every problem of the config (sizes, head layout, RoPE, token ids). */
export function validateConfig(config: LlamaConfig): void {
  const problems: string[] = [];
  const positiveInt = (key: keyof LlamaConfig, max = MAX_CONFIG_SIZE) => {
    const v = config[key];
    if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) problems.push(`${key} must be a positive integer, got ${show(v)}`);
    else if (v > max) problems.push(`${key} must be at most ${max}, got ${v}`);
  };
  for (const key of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'intermediateSize'] as const) {
    positiveInt(key);
  }
  // Only compared with sequence lengths, never allocated: any exact JSON integer will do.
  positiveInt('maxPositionEmbeddings', Number.MAX_SAFE_INTEGER);
  if (config.headDim !== null) positiveInt('headDim');
  if (!['llama', 'qwen2', 'qwen3'].includes(config.modelType)) {
    problems.push(`modelType must be 'llama', 'qwen2' or 'qwen3', got ${show(config.modelType)}`);
  }
  const { numHeads, numKvHeads, hiddenSize } = config;
  if (numHeads > 0 && numKvHeads > 0 && numHeads % numKvHeads !== 0) {
    problems.push(`numHeads (${numHeads}) must be a multiple of numKvHeads (${numKvHeads}) for grouped-query attention`);
  }
  if (config.headDim === null && numHeads > 0 && hiddenSize % numHeads !== 0) {
    problems.push(`hiddenSize (${hiddenSize}) is not divisible by numHeads (${numHeads}); set headDim explicitly`);
  }
  const headDim = headDimOf(config);
  if (Number.isInteger(headDim) && headDim % 2 !== 0) problems.push(`the head dim (${headDim}) must be even for rotary embeddings`);
  if (!(config.ropeTheta > 0)) problems.push(`ropeTheta must be > 0, got ${show(config.ropeTheta)}`);
  if (!(config.rmsNormEps > 0)) problems.push(`rmsNormEps must be > 0, got ${show(config.rmsNormEps)}`);
  for (const key of ['tieWordEmbeddings', 'attentionBias', 'attentionOutBias', 'mlpBias'] as const) {
    if (typeof config[key] !== 'boolean') problems.push(`${key} must be a boolean, got ${show(config[key])}`);
  }
  if (config.qkNorm !== null && config.qkNorm !== 'rms' && config.qkNorm !== 'layer') {
    problems.push(`qkNorm must be 'rms', 'layer' or null, got ${show(config.qkNorm)}`);
  }
  const sections = config.mropeSections;
  if (sections !== null) {
    const sum = Array.isArray(sections) ? sections.reduce((a, b) => a + b, 0) : NaN;
    if (!Array.isArray(sections) || sections.some((s) => !Number.isInteger(s) || s <= 0) || sum !== headDim / 2) {
      problems.push(`mropeSections must be positive integers summing to headDim / 2 = ${headDim / 2}, got ${show(sections)}`);
    }
  }
  const ids: [string, number | null][] = [
    ['padTokenId', config.padTokenId],
    ['bosTokenId', config.bosTokenId],
    ...eosTokenIdsLoose(config.eosTokenId).map((id): [string, number] => ['eosTokenId', id]),
  ];
  for (const [key, id] of ids) {
    if (id !== null && !(Number.isInteger(id) && id >= 0 && id < config.vocabSize)) {
      problems.push(`${key} must be an integer in [0, vocabSize = ${config.vocabSize}) or null, got ${show(id)}`);
    }
  }
  if (problems.length > 0) throw new Error(`Invalid LlamaConfig:\n  ${problems.join('\n  ')}`);
}

function eosTokenIdsLoose(eos: unknown): number[] {
  if (eos === null || eos === undefined) return [];
  return Array.isArray(eos) ? (eos as number[]) : [eos as number];
}

// ---------------------------------------------------------------------------------------------------------------
// HF config.json

type Json = Record<string, unknown>;

const ARCHITECTURES: Record<LlamaModelType, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** HF's class defaults for the keys a config may omit. */
const HF_DEFAULTS: Record<LlamaModelType, { maxPositionEmbeddings: number }> = {
  llama: { maxPositionEmbeddings: 2048 },
  qwen2: { maxPositionEmbeddings: 32768 },
  qwen3: { maxPositionEmbeddings: 32768 },
};

/**
 * Reads an HF config.json object (model_type llama, qwen2 or qwen3; SmolLM is llama). Errors name `source` (the
 * file), the key and the file's value. Qwen2 always has q/k/v biases; Qwen3 has RMS QK-norm. Unknown keys are
 * ignored, and only the object's own keys count ("__proto__" or "constructor" in a file is just an unknown key).
 * Integers must be exact (JSON.parse rounds past 2^53) and sizes at most MAX_CONFIG_SIZE.
 */
export function configFromHF(json: unknown, source = 'config.json'): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`configFromHF: expected the parsed config.json object, got ${show(json)}` + (source === 'config.json' ? '' : ` (${source})`));
  }
  const raw = json as Json;
  const modelType = own(raw, 'model_type');
  if (modelType !== 'llama' && modelType !== 'qwen2' && modelType !== 'qwen3') {
    throw new Error(
      `${source}: model_type ${show(modelType)} is not supported; supported: "llama" (also SmolLM), "qwen2", "qwen3"`,
    );
  }
  const read = new ConfigReader(raw, modelType, source);
  const hiddenAct = read.optionalString('hidden_act') ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new Error(`${source}: hidden_act ${show(hiddenAct)} is not supported by the Llama-family model; expected "silu"`);
  }
  if (read.optionalBoolean('use_sliding_window') === true) {
    throw new Error(`${source}: use_sliding_window is true, but sliding-window attention is not implemented; set it to false`);
  }
  const numHeads = read.requiredInt('num_attention_heads');
  const { ropeScaling, mropeSections } = readRope(own(raw, 'rope_scaling'), source);
  const llamaBias = read.optionalBoolean('attention_bias') ?? false;
  const config: LlamaConfig = {
    modelType,
    vocabSize: read.requiredInt('vocab_size'),
    hiddenSize: read.requiredInt('hidden_size'),
    numLayers: read.requiredInt('num_hidden_layers'),
    numHeads,
    numKvHeads: read.optionalInt('num_key_value_heads') ?? numHeads,
    intermediateSize: read.requiredInt('intermediate_size'),
    headDim: read.optionalInt('head_dim'),
    ropeTheta: read.optionalNumber('rope_theta') ?? 10000,
    ropeScaling,
    mropeSections,
    rmsNormEps: read.optionalNumber('rms_norm_eps') ?? 1e-6,
    tieWordEmbeddings: read.optionalBoolean('tie_word_embeddings') ?? false,
    qkNorm: modelType === 'qwen3' ? 'rms' : null,
    attentionBias: modelType === 'qwen2' ? true : llamaBias,
    attentionOutBias: modelType === 'qwen2' ? false : llamaBias,
    mlpBias: modelType === 'llama' ? (read.optionalBoolean('mlp_bias') ?? false) : false,
    maxPositionEmbeddings: read.optionalInt('max_position_embeddings') ?? HF_DEFAULTS[modelType].maxPositionEmbeddings,
    // Some converted Llama configs say pad_token_id -1 for "none".
    padTokenId: read.optionalTokenId('pad_token_id'),
    bosTokenId: read.optionalTokenId('bos_token_id'),
    eosTokenId: read.optionalTokenIds('eos_token_id'),
  };
  try {
    validateConfig(config);
  } catch (error) {
    throw new Error(`${source} (model_type "${modelType}") describes an invalid model: ${(error as Error).message}`);
  }
  return config;
}

/**
 * Writes the config as an HF config.json object. Fails for settings HF's class for this model type cannot
 * express (e.g. Chameleon's LayerNorm QK-norm on a Llama, or q/k/v biases without o_proj bias on a Llama).
 */
export function configToHF(config: LlamaConfig): Json {
  validateConfig(config);
  const { modelType } = config;
  const unsupported = (what: string) =>
    new Error(`configToHF: ${what} cannot be written as an HF "${modelType}" config; this model has no HF equivalent`);
  if (modelType === 'qwen3' ? config.qkNorm !== 'rms' : config.qkNorm !== null) {
    throw unsupported(`qkNorm ${show(config.qkNorm)}`);
  }
  if (modelType === 'qwen2' && (!config.attentionBias || config.attentionOutBias)) {
    throw unsupported(`attentionBias ${config.attentionBias} / attentionOutBias ${config.attentionOutBias} (Qwen2 has q/k/v biases only)`);
  }
  if (modelType !== 'qwen2' && config.attentionBias !== config.attentionOutBias) {
    throw unsupported('q/k/v biases without an o_proj bias (or the reverse)');
  }
  if (modelType !== 'llama' && config.mlpBias) throw unsupported('mlpBias');
  const out: Json = {
    architectures: [ARCHITECTURES[modelType]],
    model_type: modelType,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    hidden_act: 'silu',
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeToHF(config),
    tie_word_embeddings: config.tieWordEmbeddings,
    pad_token_id: config.padTokenId,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    torch_dtype: 'float32',
  };
  if (config.headDim !== null) out.head_dim = config.headDim;
  if (modelType === 'llama') {
    out.attention_bias = config.attentionBias;
    out.mlp_bias = config.mlpBias;
  }
  if (modelType === 'qwen3') out.attention_bias = config.attentionBias;
  if (modelType === 'qwen2') out.use_sliding_window = false;
  return out;
}

function readRope(raw: unknown, source: string): { ropeScaling: RopeScaling | null; mropeSections: number[] | null } {
  if (raw === undefined || raw === null) return { ropeScaling: null, mropeSections: null };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`${source}: rope_scaling must be an object or null, got ${show(raw)}`);
  }
  const rope = raw as Json;
  const type = own(rope, 'rope_type') ?? own(rope, 'type');
  const sections = own(rope, 'mrope_section');
  // Qwen2-VL writes M-RoPE as rope_scaling { type: "mrope", mrope_section: [16, 24, 24] } (newer files: rope_type "default").
  if (type === 'mrope' || (sections !== undefined && (type === 'default' || type === undefined))) {
    if (!Array.isArray(sections) || sections.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s <= 0)) {
      throw new Error(`${source}: rope_scaling.mrope_section must be a list of positive integers, got ${show(sections)}`);
    }
    return { ropeScaling: null, mropeSections: [...(sections as number[])] };
  }
  // Typed here, so a hostile value never reaches core's messages (which JSON.stringify it).
  if (type !== undefined && type !== null && typeof type !== 'string') {
    throw new Error(`${source}: rope_scaling.rope_type must be a string, got ${show(type)}`);
  }
  for (const key of ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']) {
    const value = own(rope, key);
    if (value !== undefined && typeof value !== 'number') {
      throw new Error(`${source}: rope_scaling.${key} must be a number, got ${show(value)}`);
    }
  }
  let ropeScaling: RopeScaling | null;
  try {
    // Own keys only: a hostile "__proto__" key must not stand in for a missing field.
    ropeScaling = ropeScalingFromConfig(ownEntries(rope)) ?? null;
  } catch (error) {
    throw new Error(`${source}: ${(error as Error).message} (rope_scaling was ${show(raw)})`);
  }
  // HF's own checks (factor >= 1); the llama3 ramp divides by high - low, so equal factors would give NaN angles.
  const problem = !ropeScaling
    ? null
    : !(ropeScaling.factor >= 1 && Number.isFinite(ropeScaling.factor))
      ? `factor must be a finite number >= 1, got ${show(ropeScaling.factor)}`
      : ropeScaling.type === 'llama3' && !(ropeScaling.lowFreqFactor > 0 && ropeScaling.highFreqFactor > ropeScaling.lowFreqFactor)
        ? `llama3 needs 0 < low_freq_factor < high_freq_factor, got ${show(ropeScaling.lowFreqFactor)} and ${show(ropeScaling.highFreqFactor)}`
        : ropeScaling.type === 'llama3' && !(Number.isSafeInteger(ropeScaling.originalMaxPositionEmbeddings) && ropeScaling.originalMaxPositionEmbeddings > 0)
          ? `original_max_position_embeddings must be a positive integer, got ${show(ropeScaling.originalMaxPositionEmbeddings)}`
          : null;
  if (problem) throw new Error(`${source}: rope_scaling: ${problem}`);
  return { ropeScaling, mropeSections: null };
}

function ropeToHF(config: LlamaConfig): Json | null {
  if (config.mropeSections !== null) {
    if (config.ropeScaling !== null) throw new Error('configToHF: M-RoPE together with rope scaling has no HF equivalent');
    return { type: 'mrope', mrope_section: [...config.mropeSections] };
  }
  const s = config.ropeScaling;
  if (s === null) return null;
  if (s.type === 'linear') return { rope_type: 'linear', factor: s.factor };
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

/** Typed reads of config.json keys with errors that name the key and the value found. */
class ConfigReader {
  constructor(
    private readonly raw: Json,
    private readonly modelType: string,
    private readonly source: string,
  ) {}

  requiredInt(key: string): number {
    const v = own(this.raw, key);
    if (v === undefined || v === null) {
      throw new Error(`${this.where()}: required key "${key}" is missing (got ${show(v)})`);
    }
    return this.optionalInt(key)!;
  }

  optionalInt(key: string): number | null {
    const v = own(this.raw, key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.wrongType(key, 'an integer');
    // JSON.parse rounds integers past 2^53, so such a value is not what the file says.
    if (!Number.isSafeInteger(v)) throw this.wrongType(key, `an integer of magnitude at most ${Number.MAX_SAFE_INTEGER}`);
    return v;
  }

  optionalNumber(key: string): number | null {
    const v = own(this.raw, key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.wrongType(key, 'a number');
    return v;
  }

  optionalBoolean(key: string): boolean | null {
    const v = own(this.raw, key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'boolean') throw this.wrongType(key, 'true or false');
    return v;
  }

  optionalString(key: string): string | null {
    const v = own(this.raw, key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw this.wrongType(key, 'a string');
    return v;
  }

  optionalTokenId(key: string): number | null {
    const v = this.optionalInt(key);
    return v === null || v < 0 ? null : v;
  }

  optionalTokenIds(key: string): number | number[] | null {
    const v = own(this.raw, key);
    if (Array.isArray(v)) {
      if (v.some((id) => typeof id !== 'number' || !Number.isSafeInteger(id))) throw this.wrongType(key, 'an integer or a list of integers');
      return v.length === 0 ? null : v.length === 1 ? (v[0] as number) : [...(v as number[])];
    }
    return this.optionalTokenId(key);
  }

  private where(): string {
    return `${this.source} (model_type "${this.modelType}")`;
  }

  private wrongType(key: string, expected: string): Error {
    return new Error(`${this.where()}: "${key}" must be ${expected}, got ${show(own(this.raw, key))}`);
  }
}

/** `object[key]` if the object itself has the key: keys like "constructor" must not resolve to Object.prototype. */
function own(object: Json, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;
}

/** A copy holding only own keys, with no prototype, so no inherited member can pass for a field. */
function ownEntries(object: Json): Json {
  const out = Object.create(null) as Json;
  for (const key of Object.keys(object)) out[key] = object[key];
  return out;
}

/**
 * A short JSON-like preview of a value for error messages: at most 3 levels, 8 items a level and 120 characters.
 * Unlike JSON.stringify it cannot overflow the stack on a hostile file nested thousands of levels deep.
 */
export function previewJson(value: unknown, maxLength = 120): string {
  const text = preview(value, 0);
  return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
}

function preview(value: unknown, depth: number): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === null || typeof value !== 'object') return String(value);
  const items = Array.isArray(value) ? value : Object.keys(value);
  if (depth >= 3) return Array.isArray(value) ? '[...]' : '{...}';
  const shown = items.slice(0, 8).map((item) =>
    Array.isArray(value) ? preview(item, depth + 1) : `${JSON.stringify(item)}:${preview((value as Json)[item as string], depth + 1)}`,
  );
  if (items.length > 8) shown.push('...');
  return Array.isArray(value) ? `[${shown.join(',')}]` : `{${shown.join(',')}}`;
}

function show(value: unknown): string {
  return previewJson(value);
}

function withoutUndefined<T extends object>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<T>;
}
