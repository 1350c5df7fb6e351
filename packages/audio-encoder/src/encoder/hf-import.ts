/**
 * HF Whisper encoders <-> WhisperEncoder, through one key-remap table (PyTorch Linear [out, in] and Conv1d
 * [out, in, k] weights are transposed at the boundary by the table's layouts; HF's `out_proj` is core's `o_proj`).
 *
 *   const encoder = await loadHFWhisperEncoder('models/whisper-tiny');        // model.encoder.* + config.json
 *   await exportHFWhisperEncoder(encoder, 'out/');                            // model.safetensors + config.json
 *
 * Names follow HF's WhisperEncoder (transformers `modeling_whisper.py`): `conv1`, `conv2`, `embed_positions.weight`,
 * `layers.N.self_attn.{q,k,v,out}_proj` (k without bias), `layers.N.self_attn_layer_norm`, `layers.N.fc1`, `fc2`,
 * `layers.N.final_layer_norm`, `layer_norm`. The encoder's prefix is found from the keys: `model.encoder.`
 * (WhisperForConditionalGeneration), `encoder.` (WhisperModel), or any prefix holding both `conv1.weight` and
 * `embed_positions.weight` (e.g. Qwen2-Audio's `audio_tower.`); decoder keys are never read. The config comes from
 * config.json (its `audio_config` when present; keys it leaves out take WhisperConfig's defaults), else from the
 * weights' shapes plus `options.config.numHeads`.
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import nodePath from 'node:path';
import {
  checkpointTensorNames,
  checkpointTensorShapes,
  exportStateDict,
  importStateDict,
  loadShardedSafetensors,
  prefixTable,
  readCheckpointConfig,
  recoverDirectory,
  saveHFModelFolder,
  type RemapTable,
} from '@chimera/core';
import { resolveModelPath, type HubDownloadOptions } from '@chimera/core/hub';
import { whisperEncoderConfig, type WhisperEncoderConfig } from './config';
import { WhisperEncoder } from './encoder';

/** HF WhisperEncoder names, relative to the encoder root. */
export const WHISPER_ENCODER_TABLE: RemapTable = {
  rules: [
    { external: 'conv1.weight', internal: 'conv1.weight', layout: 'conv1d' },
    { external: 'conv1.bias', internal: 'conv1.bias' },
    { external: 'conv2.weight', internal: 'conv2.weight', layout: 'conv1d' },
    { external: 'conv2.bias', internal: 'conv2.bias' },
    { external: 'embed_positions.weight', internal: 'embed_positions.weight' },
    ...(['q_proj', 'k_proj', 'v_proj'] as const).map((proj) => ({
      external: `layers.{i}.self_attn.${proj}.weight`,
      internal: `layers.{i}.self_attn.${proj}.weight`,
      layout: 'linear' as const,
    })),
    { external: 'layers.{i}.self_attn.q_proj.bias', internal: 'layers.{i}.self_attn.q_proj.bias' },
    { external: 'layers.{i}.self_attn.v_proj.bias', internal: 'layers.{i}.self_attn.v_proj.bias' },
    { external: 'layers.{i}.self_attn.out_proj.weight', internal: 'layers.{i}.self_attn.o_proj.weight', layout: 'linear' },
    { external: 'layers.{i}.self_attn.out_proj.bias', internal: 'layers.{i}.self_attn.o_proj.bias' },
    { external: 'layers.{i}.self_attn_layer_norm.{param}', internal: 'layers.{i}.self_attn_layer_norm.{param}' },
    { external: 'layers.{i}.final_layer_norm.{param}', internal: 'layers.{i}.final_layer_norm.{param}' },
    { external: 'layers.{i}.fc1.weight', internal: 'layers.{i}.fc1.weight', layout: 'linear' },
    { external: 'layers.{i}.fc1.bias', internal: 'layers.{i}.fc1.bias' },
    { external: 'layers.{i}.fc2.weight', internal: 'layers.{i}.fc2.weight', layout: 'linear' },
    { external: 'layers.{i}.fc2.bias', internal: 'layers.{i}.fc2.bias' },
    { external: 'layer_norm.{param}', internal: 'layer_norm.{param}' },
  ],
};

/** The table with the checkpoint's prefix (default `model.encoder.`) on the external side. */
export function hfWhisperRemapTable(prefix = 'model.encoder.'): RemapTable {
  return prefix ? prefixTable(WHISPER_ENCODER_TABLE, { external: prefix, internal: '' }) : WHISPER_ENCODER_TABLE;
}

// ---- config.json ----

type Json = Record<string, unknown>;

/** WhisperConfig's defaults (transformers), for keys a config.json leaves out. */
const HF_DEFAULTS: Json = {
  num_mel_bins: 80,
  d_model: 384,
  encoder_layers: 4,
  encoder_attention_heads: 6,
  encoder_ffn_dim: 1536,
  max_source_positions: 1500,
  activation_function: 'gelu',
};

const AUDIO_MODEL_TYPES = ['whisper', 'qwen2_audio_encoder'];

/** The encoder part of an HF config.json: a Whisper config, or a composite's `audio_config`. */
export function whisperConfigOf(json: unknown): Json {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`HF Whisper config: expected a JSON object, got ${JSON.stringify(json)?.slice(0, 80)}`);
  }
  const top = json as Json;
  const nested = top.audio_config;
  const audio = nested && typeof nested === 'object' && !Array.isArray(nested) ? (nested as Json) : top;
  const type = audio.model_type;
  if (type !== undefined && !AUDIO_MODEL_TYPES.includes(type as string)) {
    throw new Error(
      `HF Whisper config: model_type '${String(type)}' is not a Whisper encoder (supported: ${AUDIO_MODEL_TYPES.join(', ')}, ` +
        'or any config with an audio_config)',
    );
  }
  return audio;
}

/** A WhisperEncoderConfig from an HF config (see whisperConfigOf), WhisperConfig's defaults filling gaps. */
export function whisperEncoderConfigFromHF(json: unknown): WhisperEncoderConfig {
  const merged: Json = { ...HF_DEFAULTS, ...whisperConfigOf(json) };
  const num = (key: string): number => {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`HF Whisper config: '${key}' must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const act = merged.activation_function;
  if (typeof act !== 'string') throw new Error(`HF Whisper config: 'activation_function' must be a string, got ${JSON.stringify(act)}`);
  return whisperEncoderConfig({
    numMelBins: num('num_mel_bins'),
    dModel: num('d_model'),
    numLayers: num('encoder_layers'),
    numHeads: num('encoder_attention_heads'),
    ffnDim: num('encoder_ffn_dim'),
    maxSourcePositions: num('max_source_positions'),
    activation: act,
  });
}

/**
 * The HF config.json of an exported encoder: model_type 'whisper' with the encoder's sizes (the decoder keys repeat
 * them so WhisperConfig parses; the export holds no decoder weights).
 */
export function whisperEncoderConfigToHF(config: WhisperEncoderConfig): Json {
  if (config.layerNormEps !== 1e-5) {
    throw new Error(`exportHFWhisperEncoder: HF Whisper's LayerNorms use eps 1e-5 (no config key), this encoder has ${config.layerNormEps}`);
  }
  return {
    model_type: 'whisper',
    num_mel_bins: config.numMelBins,
    d_model: config.dModel,
    encoder_layers: config.numLayers,
    encoder_attention_heads: config.numHeads,
    encoder_ffn_dim: config.ffnDim,
    decoder_layers: config.numLayers,
    decoder_attention_heads: config.numHeads,
    decoder_ffn_dim: config.ffnDim,
    max_source_positions: config.maxSourcePositions,
    activation_function: config.activation,
    torch_dtype: 'float32',
  };
}

// ---- loading ----

/** The Hub options (revision, cacheDir, token, ...) apply when the path is a Hub id; see `@chimera/core/hub`. */
export interface LoadHFWhisperEncoderOptions extends HubDownloadOptions {
  /** Key prefix of the encoder (e.g. 'model.encoder.'); found from the keys when omitted. */
  prefix?: string;
  /** Overrides on the config (numHeads is required without config.json: shapes do not tell it). */
  config?: Partial<WhisperEncoderConfig>;
}

/**
 * Loads an HF Whisper encoder from a checkpoint directory (model.safetensors or a sharded index, plus config.json),
 * a .safetensors / .index.json file, or a Hub id (`'openai/whisper-tiny'`, downloaded into the HF cache: config.json
 * and the safetensors files). Only the encoder's tensors are read; unknown keys under its prefix are an error, not
 * silently dropped.
 */
export async function loadHFWhisperEncoder(pathOrId: string, options: LoadHFWhisperEncoderOptions = {}): Promise<WhisperEncoder> {
  const path = await resolveModelPath(pathOrId, { optional: ['config.json'], safetensors: true }, options);
  const stat = await fs.stat(path).catch(() => null);
  if (!stat) throw new Error(`loadHFWhisperEncoder: ${path}: no such checkpoint file or directory`);
  await recoverDirectory(stat.isDirectory() ? path : nodePath.dirname(path));
  const names = await checkpointTensorNames(path, 'loadHFWhisperEncoder');
  const prefix = options.prefix ?? findEncoderPrefix(names, path);
  const encoderNames = names.filter((n) => n.startsWith(prefix));
  if (!encoderNames.includes(`${prefix}conv1.weight`)) {
    throw new Error(`loadHFWhisperEncoder: ${path} has no '${prefix}conv1.weight'; check options.prefix ('${prefix}')`);
  }
  const configJson = await readCheckpointConfig(path, 'loadHFWhisperEncoder');
  let config = configJson !== null ? whisperEncoderConfigFromHF(configJson) : await configFromWeights(path, prefix, encoderNames, options.config);
  if (options.config) config = whisperEncoderConfig({ ...config, ...options.config });

  const { tensors } = await loadShardedSafetensors(path, { names: encoderNames });
  let state: Record<string, tf.Tensor> = {};
  try {
    state = importStateDict(tensors, hfWhisperRemapTable(prefix), { disposeSource: true });
    const encoder = new WhisperEncoder(config);
    try {
      encoder.loadStateDict(state);
    } catch (error) {
      encoder.dispose();
      throw new Error(`loadHFWhisperEncoder: ${path} does not fit the configured encoder: ${(error as Error).message}`);
    }
    return encoder;
  } finally {
    tf.dispose(Object.values(tensors).filter((t) => !t.isDisposed));
    tf.dispose(Object.values(state));
  }
}

/** Prefixes holding both conv1.weight and embed_positions.weight; exactly one must exist. */
function findEncoderPrefix(names: string[], path: string): string {
  const all = new Set(names);
  const key = 'conv1.weight';
  const prefixes = names
    .filter((n) => n === key || n.endsWith(`.${key}`))
    .map((n) => n.slice(0, n.length - key.length))
    .filter((p) => all.has(`${p}embed_positions.weight`));
  if (prefixes.length === 1) return prefixes[0]!;
  if (prefixes.length === 0) {
    throw new Error(
      `loadHFWhisperEncoder: ${path} holds no Whisper encoder (no prefix with both 'conv1.weight' and ` +
        `'embed_positions.weight'; first keys: ${names.slice(0, 5).join(', ')})`,
    );
  }
  throw new Error(`loadHFWhisperEncoder: ${path} holds several encoders (${prefixes.map((p) => `'${p}'`).join(', ')}); pass options.prefix`);
}

/** Sizes from the tensor shapes (headers only); numHeads must come from `overrides`. */
async function configFromWeights(
  path: string,
  prefix: string,
  names: string[],
  overrides: Partial<WhisperEncoderConfig> | undefined,
): Promise<WhisperEncoderConfig> {
  if (overrides?.numHeads === undefined) {
    throw new Error(
      `loadHFWhisperEncoder: ${path} has no config.json and the head count cannot be read from the weights; ` +
        'pass options.config.numHeads (6 for whisper-tiny, 8 for base, 12 for small)',
    );
  }
  const shapes = await checkpointTensorShapes(path, names);
  const shape = (key: string): number[] => {
    const s = shapes.get(prefix + key);
    if (!s) throw new Error(`loadHFWhisperEncoder: ${path} lacks '${prefix}${key}', needed to infer the config`);
    return s;
  };
  const [dModel, numMelBins] = shape('conv1.weight') as [number, number];
  const layerIds = new Set(names.map((n) => /^layers\.(\d+)\./.exec(n.slice(prefix.length))?.[1]).filter(Boolean));
  return whisperEncoderConfig({
    numMelBins,
    dModel,
    numLayers: layerIds.size,
    numHeads: overrides.numHeads,
    ffnDim: shape('layers.0.fc1.weight')[0]!,
    maxSourcePositions: shape('embed_positions.weight')[0]!,
  });
}

// ---- export ----

/** Options of {@link exportHFWhisperEncoder} and {@link hfWhisperStateDict}. */
export interface ExportHFWhisperEncoderOptions {
  /** Key prefix in the written file (default 'model.encoder.', as WhisperForConditionalGeneration saves). */
  prefix?: string;
}

/** The encoder's state dict in HF layout and names (new tensors: the caller disposes them). */
export function hfWhisperStateDict(encoder: WhisperEncoder, options: ExportHFWhisperEncoderOptions = {}): Record<string, tf.Tensor> {
  return exportStateDict(encoder.stateDict(), hfWhisperRemapTable(options.prefix ?? 'model.encoder.'));
}

/**
 * Writes `dir/model.safetensors` (HF layout, F32) and `dir/config.json`, replacing an earlier export in `dir` as
 * one unit (core's commitDirectory).
 */
export async function exportHFWhisperEncoder(encoder: WhisperEncoder, dir: string, options: ExportHFWhisperEncoderOptions = {}): Promise<void> {
  const tensors = hfWhisperStateDict(encoder, options);
  try {
    await saveHFModelFolder(dir, tensors, whisperEncoderConfigToHF(encoder.config), 'export the Whisper encoder');
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
