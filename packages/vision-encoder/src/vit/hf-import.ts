/**
 * HF CLIP and SigLIP vision towers <-> VisionTransformer, through explicit key-remap tables (PyTorch Linear
 * [out, in] and Conv2d [out, in, kH, kW] weights are transposed at the boundary by the tables' layouts).
 *
 *   const tower = await loadHFVisionTower('models/clip-vit-large-patch14-336');          // family from config.json
 *   const llava = await loadHFVisionTower('models/llava-1.5-7b-hf', { family: 'clip' });  // prefix found by itself
 *   await exportHFVisionTower(tower, 'out/');                                             // model.safetensors + config.json
 *
 * Checkpoints may be a bare vision model (`vision_model.*`), a full CLIP/SigLIP model (the text tower and
 * projections are never read) or a composite such as LLaVA (`vision_tower.vision_model.*`, also under `model.`);
 * the tower's prefix is the part before `embeddings.patch_embedding.weight`. The config comes from config.json
 * (its `vision_config` when present; keys HF leaves out take HF's class defaults), else from the weights' shapes
 * plus `options.config` (numHeads cannot be read from shapes).
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
  type RemapRule,
  type RemapTable,
} from '@chimera/core';
import { resolveModelPath, type HubDownloadOptions } from '@chimera/core/hub';
import { familyDefaults, vitConfig, type ViTConfig, type ViTFamily } from './config';
import { VisionTransformer } from './tower';

/** Rules shared by both families, relative to the tower root (HF `vision_model.`). */
const ENCODER_RULES: RemapRule[] = [
  { external: 'embeddings.patch_embedding.weight', internal: 'patch_embedding.weight', layout: 'conv2d' },
  { external: 'embeddings.position_embedding.weight', internal: 'position_embedding.weight' },
  ...(['q_proj', 'k_proj', 'v_proj'] as const).flatMap((proj): RemapRule[] => [
    { external: `encoder.layers.{i}.self_attn.${proj}.weight`, internal: `layers.{i}.self_attn.${proj}.weight`, layout: 'linear' },
    { external: `encoder.layers.{i}.self_attn.${proj}.bias`, internal: `layers.{i}.self_attn.${proj}.bias` },
  ]),
  { external: 'encoder.layers.{i}.self_attn.out_proj.weight', internal: 'layers.{i}.self_attn.o_proj.weight', layout: 'linear' },
  { external: 'encoder.layers.{i}.self_attn.out_proj.bias', internal: 'layers.{i}.self_attn.o_proj.bias' },
  { external: 'encoder.layers.{i}.layer_norm1.{param}', internal: 'layers.{i}.layer_norm1.{param}' },
  { external: 'encoder.layers.{i}.layer_norm2.{param}', internal: 'layers.{i}.layer_norm2.{param}' },
  { external: 'encoder.layers.{i}.mlp.fc1.weight', internal: 'layers.{i}.mlp.fc1.weight', layout: 'linear' },
  { external: 'encoder.layers.{i}.mlp.fc1.bias', internal: 'layers.{i}.mlp.fc1.bias' },
  { external: 'encoder.layers.{i}.mlp.fc2.weight', internal: 'layers.{i}.mlp.fc2.weight', layout: 'linear' },
  { external: 'encoder.layers.{i}.mlp.fc2.bias', internal: 'layers.{i}.mlp.fc2.bias' },
  { external: 'post_layernorm.{param}', internal: 'post_layernorm.{param}' },
];

/** HF CLIPVisionTransformer (`CLIPVisionModel.vision_model`): CLS token, pre_layrnorm, no patch bias. */
export const CLIP_VISION_TABLE: RemapTable = {
  rules: [
    { external: 'embeddings.class_embedding', internal: 'class_embedding' },
    { external: 'pre_layrnorm.{param}', internal: 'pre_layrnorm.{param}' },
    ...ENCODER_RULES,
  ],
  // A buffer older transformers versions saved; it is arange(num_positions).
  ignoreExternal: ['embeddings.position_ids'],
};

/**
 * HF SiglipVisionTransformer: a patch bias, no CLS, no pre-norm. The attention-pooling head (`head.*`, used for
 * SigLIP's image-text loss, not by VLMs) is not part of VisionTransformer and is skipped.
 */
export const SIGLIP_VISION_TABLE: RemapTable = {
  rules: [{ external: 'embeddings.patch_embedding.bias', internal: 'patch_embedding.bias' }, ...ENCODER_RULES],
  ignoreExternal: ['embeddings.position_ids', 'head.**'],
};

/** The family's table with the checkpoint's prefix (e.g. `vision_tower.vision_model.`) on the external side. */
export function hfVisionRemapTable(family: ViTFamily, prefix = ''): RemapTable {
  const table = family === 'clip' ? CLIP_VISION_TABLE : SIGLIP_VISION_TABLE;
  return prefix ? prefixTable(table, { external: prefix, internal: '' }) : table;
}

// ---- config.json ----

type Json = Record<string, unknown>;

const MODEL_TYPES: Record<string, ViTFamily> = {
  clip: 'clip',
  clip_vision_model: 'clip',
  siglip: 'siglip',
  siglip_vision_model: 'siglip',
};

/** HF's CLIPVisionConfig / SiglipVisionConfig defaults, for keys a config.json leaves out. */
const HF_DEFAULTS: Record<ViTFamily, Json> = {
  clip: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3, image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5 },
  siglip: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3, image_size: 224, patch_size: 16, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6 },
};

const HF_ACTIVATIONS: Record<string, string> = { gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh' };

/**
 * The vision part of an HF config.json: a CLIP/SigLIP vision config itself, or any config holding one as
 * `vision_config` (CLIPModel, SiglipModel, LLaVA and other composites). Returns the family it declares (null
 * when the config has no model_type).
 */
export function visionConfigOf(json: unknown): { vision: Json; family: ViTFamily | null } {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`HF vision config: expected a JSON object, got ${JSON.stringify(json)?.slice(0, 80)}`);
  }
  const top = json as Json;
  const nested = top.vision_config;
  const vision = nested && typeof nested === 'object' && !Array.isArray(nested) ? (nested as Json) : top;
  // LLaVA-style composites may omit the vision model_type; CLIPModel/SiglipModel name the family at the top.
  const type = (vision.model_type ?? (vision === top ? undefined : top.model_type)) as string | undefined;
  if (type === undefined) return { vision, family: null };
  const family = Object.hasOwn(MODEL_TYPES, type) ? MODEL_TYPES[type]! : null;
  if (!family && vision !== top) return { vision, family: null };
  if (!family) {
    throw new Error(
      `HF vision config: model_type '${type}' is not a CLIP or SigLIP vision tower ` +
        `(supported: ${Object.keys(MODEL_TYPES).join(', ')}, or any config with a vision_config)`,
    );
  }
  return { vision, family };
}

/** A ViTConfig from an HF vision config (see visionConfigOf), HF's defaults filling the keys it leaves out. */
export function vitConfigFromHF(json: unknown, family?: ViTFamily): ViTConfig {
  const { vision, family: declared } = visionConfigOf(json);
  const resolved = resolveFamily(family, declared, 'config.json');
  const merged: Json = { ...HF_DEFAULTS[resolved], ...vision };
  const num = (key: string): number => {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(`HF vision config: '${key}' must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const act = merged.hidden_act;
  if (typeof act !== 'string') throw new Error(`HF vision config: 'hidden_act' must be a string, got ${JSON.stringify(act)}`);
  return vitConfig({
    ...familyDefaults(resolved),
    imageSize: num('image_size'),
    patchSize: num('patch_size'),
    channels: num('num_channels'),
    hiddenSize: num('hidden_size'),
    numLayers: num('num_hidden_layers'),
    numHeads: num('num_attention_heads'),
    intermediateSize: num('intermediate_size'),
    activation: HF_ACTIVATIONS[act] ?? act,
    layerNormEps: num('layer_norm_eps'),
    // HF's strided conv ignores a border under one patch (so400m: 384 px, patch 14).
    dropRemainder: num('image_size') % num('patch_size') !== 0,
  });
}

/** The HF vision config (model_type clip_vision_model / siglip_vision_model) of a CLIP- or SigLIP-layout tower. */
export function vitConfigToHF(config: ViTConfig): Json {
  const family = exportFamily(config);
  const act = config.activation === 'gelu_tanh' ? 'gelu_pytorch_tanh' : config.activation;
  return {
    architectures: [family === 'clip' ? 'CLIPVisionModel' : 'SiglipVisionModel'],
    model_type: family === 'clip' ? 'clip_vision_model' : 'siglip_vision_model',
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_channels: config.channels,
    image_size: config.imageSize,
    patch_size: config.patchSize,
    hidden_act: act,
    layer_norm_eps: config.layerNormEps,
    torch_dtype: 'float32',
  };
}

/** The family whose HF layout holds this tower exactly; throws for structures HF has no class for. */
function exportFamily(config: ViTConfig): ViTFamily {
  if (config.positions !== 'learned') {
    throw new Error(
      "exportHFVisionTower: a tower with positions 'rope2d' has no HF CLIP/SigLIP layout; save it with core's saveCheckpoint",
    );
  }
  const structural = ['clsToken', 'preNorm', 'postNorm', 'patchBias'] as const;
  const candidates: ViTFamily[] = config.family ? [config.family] : ['clip', 'siglip'];
  for (const family of candidates) {
    const expected = familyDefaults(family);
    const differing = structural.filter((key) => config[key] !== expected[key]);
    if (differing.length === 0) return family;
    if (config.family) {
      throw new Error(
        `exportHFVisionTower: a ${family} tower needs ${differing.map((k) => `${k}: ${expected[k]}`).join(', ')} ` +
          `(HF's ${family === 'clip' ? 'CLIPVisionModel' : 'SiglipVisionModel'} has no switch for it); this config has ` +
          `${differing.map((k) => `${k}: ${config[k]}`).join(', ')}`,
      );
    }
  }
  throw new Error(
    'exportHFVisionTower: this tower matches neither the CLIP (CLS, pre-norm, no patch bias) nor the SigLIP ' +
      '(no CLS, no pre-norm, patch bias) structure; save it with core\'s saveCheckpoint instead',
  );
}

function resolveFamily(requested: ViTFamily | undefined, declared: ViTFamily | null, source: string): ViTFamily {
  if (requested !== undefined && requested !== 'clip' && requested !== 'siglip') {
    throw new Error(`HF vision tower: family must be 'clip' or 'siglip', got ${JSON.stringify(requested)}`);
  }
  if (requested && declared && requested !== declared) {
    throw new Error(`HF vision tower: options.family is '${requested}' but ${source} declares a ${declared} tower; drop the option or fix it`);
  }
  const family = requested ?? declared;
  if (!family) {
    throw new Error(`HF vision tower: ${source} does not say whether this is a CLIP or SigLIP tower; pass { family: 'clip' | 'siglip' }`);
  }
  return family;
}

// ---- loading ----

/** The Hub options (revision, cacheDir, token, ...) apply when the path is a Hub id; see `@chimera/core/hub`. */
export interface LoadHFVisionTowerOptions extends HubDownloadOptions {
  /** Required when config.json is absent or names no model_type. */
  family?: ViTFamily;
  /** Key prefix of the tower (e.g. 'vision_tower.vision_model.'); found from the keys when omitted. */
  prefix?: string;
  /** Overrides on the config read from config.json or inferred from the weights (e.g. numHeads without a config). */
  config?: Partial<ViTConfig>;
}

const PATCH_KEY = 'embeddings.patch_embedding.weight';

/**
 * Loads an HF CLIP/SigLIP vision tower from a checkpoint directory (model.safetensors or a sharded index, plus
 * config.json), a .safetensors / .index.json file (config.json next to it is used when present), or a Hub id
 * (`'openai/clip-vit-base-patch16'`, downloaded into the HF cache: config.json and the safetensors files). Only
 * the tower's tensors are read. Unknown keys under the tower's prefix are an error, not silently dropped.
 */
export async function loadHFVisionTower(pathOrId: string, options: LoadHFVisionTowerOptions = {}): Promise<VisionTransformer> {
  const path = await resolveModelPath(pathOrId, { optional: ['config.json'], safetensors: true }, options);
  // An export killed mid-save is finished (or its leftovers removed) before config.json and the weights are read.
  await recoverDirectory((await fs.stat(path).catch(() => null))?.isDirectory() ? path : nodePath.dirname(path));
  const names = await checkpointTensorNames(path, 'loadHFVisionTower');
  const prefix = options.prefix ?? findTowerPrefix(names, path);
  const towerNames = names.filter((n) => n.startsWith(prefix));
  if (!towerNames.includes(prefix + PATCH_KEY)) {
    throw new Error(`loadHFVisionTower: ${path} has no '${prefix}${PATCH_KEY}'; check options.prefix ('${prefix}')`);
  }
  const configJson = await readCheckpointConfig(path, 'loadHFVisionTower');
  let config: ViTConfig;
  if (configJson !== null) {
    const { family: declared } = visionConfigOf(configJson);
    config = vitConfigFromHF(configJson, resolveFamily(options.family, declared, 'config.json'));
  } else {
    config = await configFromWeights(path, prefix, towerNames, resolveFamily(options.family, null, `${path} (no config.json)`), options.config);
  }
  if (options.config) config = vitConfig({ ...config, ...options.config });

  const { tensors } = await loadShardedSafetensors(path, { names: towerNames });
  let state: Record<string, tf.Tensor> = {};
  try {
    state = importStateDict(tensors, hfVisionRemapTable(config.family ?? 'clip', prefix), { disposeSource: true });
    const tower = new VisionTransformer(config);
    try {
      tower.loadStateDict(state);
    } catch (error) {
      tower.dispose();
      throw new Error(`loadHFVisionTower: ${path} does not fit the configured tower: ${(error as Error).message}`);
    }
    return tower;
  } finally {
    tf.dispose(Object.values(tensors).filter((t) => !t.isDisposed));
    tf.dispose(Object.values(state));
  }
}

/** The prefix before `embeddings.patch_embedding.weight`; exactly one tower must be present. */
function findTowerPrefix(names: string[], path: string): string {
  const prefixes = names.filter((n) => n === PATCH_KEY || n.endsWith(`.${PATCH_KEY}`)).map((n) => n.slice(0, n.length - PATCH_KEY.length));
  if (prefixes.length === 1) return prefixes[0]!;
  if (prefixes.length === 0) {
    throw new Error(
      `loadHFVisionTower: ${path} holds no CLIP/SigLIP vision tower (no key ending in '${PATCH_KEY}'; ` +
        `first keys: ${names.slice(0, 5).join(', ')})`,
    );
  }
  throw new Error(`loadHFVisionTower: ${path} holds several vision towers (${prefixes.map((p) => `'${p}'`).join(', ')}); pass options.prefix`);
}

/** Sizes from the tensor shapes (headers only); numHeads must come from `overrides`. */
async function configFromWeights(
  path: string,
  prefix: string,
  names: string[],
  family: ViTFamily,
  overrides: Partial<ViTConfig> | undefined,
): Promise<ViTConfig> {
  const shapes = await checkpointTensorShapes(path, names);
  const shape = (key: string): number[] => {
    const s = shapes.get(prefix + key);
    if (!s) throw new Error(`loadHFVisionTower: ${path} lacks '${prefix}${key}', needed to infer the config`);
    return s;
  };
  const [hiddenSize, channels, patchSize] = shape(PATCH_KEY) as [number, number, number];
  const defaults = familyDefaults(family);
  const positions = shape('embeddings.position_embedding.weight')[0]! - (defaults.clsToken ? 1 : 0);
  const grid = Math.round(Math.sqrt(positions));
  if (grid * grid !== positions) {
    throw new Error(`loadHFVisionTower: ${positions} patch positions do not form a square grid; pass options.config.imageSize`);
  }
  const layerIds = new Set(names.map((n) => /encoder\.layers\.(\d+)\./.exec(n.slice(prefix.length))?.[1]).filter(Boolean));
  const numHeads = overrides?.numHeads;
  if (numHeads === undefined) {
    throw new Error(
      `loadHFVisionTower: ${path} has no config.json and the head count cannot be read from the weights; ` +
        'pass options.config.numHeads (e.g. 16 for ViT-L/14, 12 for ViT-B)',
    );
  }
  return vitConfig({
    ...defaults,
    imageSize: grid * patchSize,
    patchSize,
    channels,
    hiddenSize,
    numLayers: layerIds.size,
    numHeads,
    intermediateSize: shape('encoder.layers.0.mlp.fc1.weight')[0]!,
  });
}


// ---- export ----

/** Options of {@link exportHFVisionTower} and {@link hfVisionStateDict}. */
export interface ExportHFVisionTowerOptions {
  /** Key prefix in the written file (default 'vision_model.', as CLIPVisionModel / SiglipVisionModel save). */
  prefix?: string;
}

/** The tower's state dict in HF layout and names (new tensors: the caller disposes them). */
export function hfVisionStateDict(tower: VisionTransformer, options: ExportHFVisionTowerOptions = {}): Record<string, tf.Tensor> {
  const family = exportFamily(tower.config);
  return exportStateDict(tower.stateDict(), hfVisionRemapTable(family, options.prefix ?? 'vision_model.'));
}

/**
 * Writes `dir/model.safetensors` (HF layout, F32) and `dir/config.json` (the vision config), replacing an
 * earlier export in `dir` as one unit (core's commitDirectory).
 */
export async function exportHFVisionTower(tower: VisionTransformer, dir: string, options: ExportHFVisionTowerOptions = {}): Promise<void> {
  const tensors = hfVisionStateDict(tower, options);
  try {
    await saveHFModelFolder(dir, tensors, vitConfigToHF(tower.config), 'export the vision tower');
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
