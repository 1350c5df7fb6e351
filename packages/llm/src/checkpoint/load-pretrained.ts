/**
 * Loads a Hugging Face model directory (Llama, SmolLM, Qwen2, Qwen3) into a CausalLM: config.json,
 * generation_config.json (end-of-sequence ids), the weights as model.safetensors or sharded through
 * model.safetensors.index.json (F32, F16 or BF16 on disk), and the tokenizer files when present.
 *
 *   const { model, tokenizer, config } = await loadPretrained('./SmolLM-135M');
 *   await loadPretrainedWeights(fusedModel, './SmolLM-135M');   // a plain checkpoint into an extended model
 *
 * The weights are checked against the config before any tensor data is read: missing, unexpected and
 * wrong-shape tensors are reported together, under their names in the files. loadPretrained does this from the
 * config alone, before building the model, so a config.json that claims more than its weights (100,000 layers, a
 * vocabulary of 5e7) fails in milliseconds, naming the field, instead of allocating gigabytes first; it also
 * refuses a model more than four times the size of its weights, or larger than this machine's memory.
 *
 * A Hub id (`'HuggingFaceTB/SmolLM2-135M'`) that is not a local folder is downloaded first, through
 * `@chimera/core/hub`, into the HF cache Python shares: only config.json, generation_config.json, the safetensors
 * weights and (unless `tokenizer: false`) the tokenizer files, at `revision` (a branch, tag or commit).
 */
import * as tf from '@tensorflow/tfjs';
import { constants as bufferConstants } from 'node:buffer';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import {
  importStateDict,
  loadShardedSafetensors,
  matchName,
  planRemap,
  readSafetensorsHeader,
  readSafetensorsIndex,
  readDirectoryConsistently,
  recoverDirectory,
} from '@chimera/core';
import { resolveModelPath, type HubDownloadOptions, type HubFileSelection } from '@chimera/core/hub';
import { configFromHF, headDimOf, previewJson, validateConfig, type LlamaConfig } from '../config';
import { CausalLM } from '../model/causal-lm';
import { isExtensionParameter } from '../model/extension-points';
import { HFTokenizer } from '../tokenizers/hf-tokenizer';
import { LLAMA_HF_REMAP } from './hf-keys';

/**
 * Options for loading. The Hub options (revision, cacheDir, token, endpoint, refresh, offline, progress, retries)
 * apply when the argument is a Hub id rather than a local folder; see `HubDownloadOptions` in `@chimera/core/hub`.
 */
export interface LoadPretrainedOptions extends HubDownloadOptions {
  /**
   * Every tensor the config implies must be in the files and nothing else (default true). With false, missing
   * tensors keep their current values and unexpected ones are skipped; a wrong shape is always an error.
   */
  strict?: boolean;
  /** Load tokenizer.json (and tokenizer_config.json) when the directory has it (default true). */
  tokenizer?: boolean;
}

/**
 * What {@link loadPretrained} returns: the model with its weights, its config, and the tokenizer and generation
 * config when the folder has them.
 */
export interface PretrainedModel {
  /** The model, weights loaded (the caller disposes it). */
  model: CausalLM;
  /** From config.json, with generation_config.json's eos_token_id when that file gives one. */
  config: LlamaConfig;
  /** Present when the directory holds tokenizer.json (and `tokenizer` was not false). */
  tokenizer?: HFTokenizer;
  /** generation_config.json as parsed, when present (sampling defaults and the like). */
  generationConfig?: Record<string, unknown>;
}

/** What loadPretrainedWeights did, in the files' (HF) names. */
export interface LoadPretrainedReport {
  /** Tensors copied into the model. */
  loaded: string[];
  /** Tensors the config implies but the files lack (non-strict loads only). */
  missing: string[];
  /** Tensors in the files the model has no place for (non-strict loads only). */
  unexpected: string[];
  /** Tensors skipped by rule: rotary inv_freq buffers, and lm_head.weight when it equals the tied embedding. */
  ignored: string[];
}

/** Weights load from these file dtypes (decoded to float32). */
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

interface FileTensor {
  shape: number[];
  dtype: string;
  /** The safetensors file holding it, relative to the directory. */
  file: string;
}

/** config.json and generation_config.json are a few KB; anything this large is not one. */
const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** The files loadPretrained reads, fetched when it is given a Hub id. */
function filesToFetch(options: { tokenizer?: boolean; weights: boolean }): HubFileSelection {
  const tokenizer = options.tokenizer === false ? [] : ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'chat_template.json'];
  return { required: ['config.json'], optional: ['generation_config.json', ...tokenizer], safetensors: options.weights };
}

/** Reads config.json (and generation_config.json's eos ids) from an HF directory or a Hub id (only those files). */
export async function readPretrainedConfig(
  dirOrId: string,
  options: HubDownloadOptions = {},
): Promise<{ config: LlamaConfig; generationConfig?: Record<string, unknown> }> {
  const dir = await resolveModelPath(dirOrId, filesToFetch({ tokenizer: false, weights: false }), options);
  await assertDirectory(dir);
  const configPath = nodePath.join(dir, 'config.json');
  const raw = await readJson(configPath);
  if (raw === undefined) {
    throw new Error(`loadPretrained: ${dir} has no config.json; an HF model directory needs config.json next to its weights`);
  }
  let config = configFromHF(raw, configPath);
  const generationPath = nodePath.join(dir, 'generation_config.json');
  const generationConfig = await readJson(generationPath);
  if (generationConfig === undefined) return { config };
  if (generationConfig === null || typeof generationConfig !== 'object' || Array.isArray(generationConfig)) {
    throw new Error(`loadPretrained: ${generationPath} must hold a JSON object, got ${previewJson(generationConfig)}`);
  }
  const generation = generationConfig as Record<string, unknown>;
  const eos = Object.prototype.hasOwnProperty.call(generation, 'eos_token_id') ? generation.eos_token_id : undefined;
  if (eos !== undefined && eos !== null) {
    const ids = Array.isArray(eos) ? eos : [eos];
    if (ids.length === 0 || ids.some((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= config.vocabSize)) {
      throw new Error(
        `${generationPath}: "eos_token_id" must be a token id or a list of token ids in [0, ${config.vocabSize}), ` +
          `got ${previewJson(eos)}`,
      );
    }
    config = { ...config, eosTokenId: ids.length === 1 ? (ids[0] as number) : [...(ids as number[])] };
    validateConfig(config);
  }
  return { config, generationConfig: generation };
}

/**
 * Builds a CausalLM from an HF model directory or Hub id and loads its weights (strict by default) and, when
 * present, its tokenizer. The caller owns the model: dispose it when done.
 */
export async function loadPretrained(dirOrId: string, options: LoadPretrainedOptions = {}): Promise<PretrainedModel> {
  const dir = await resolveModelPath(dirOrId, filesToFetch({ tokenizer: options.tokenizer, weights: true }), options);
  await assertDirectory(dir);
  // Config, weights and tokenizer from one version of the folder, even while another process saves into it.
  return readDirectoryConsistently(dir, () => loadPretrainedOnce(dir, options), (stale) => stale.model.dispose());
}

async function loadPretrainedOnce(dir: string, options: LoadPretrainedOptions): Promise<PretrainedModel> {
  const { config, generationConfig } = await readPretrainedConfig(dir);
  const strict = options.strict ?? true;
  const inFiles = await readCheckpointLayout(dir);
  // Everything the config claims is checked against the weights' headers before a single parameter exists.
  checkConfigAgainstWeights(config, inFiles, dir, strict);
  planLoad(expectedShapesFromConfig(config), inFiles, strict, dir, config);
  const model = new CausalLM(config);
  try {
    await loadWeightsInto(model, dir, inFiles, strict);
    const result: PretrainedModel = { model, config };
    if (options.tokenizer !== false && (await isFile(nodePath.join(dir, 'tokenizer.json')))) {
      result.tokenizer = await HFTokenizer.fromDirectory(dir);
    }
    if (generationConfig) result.generationConfig = generationConfig;
    return result;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * Loads the weights of an HF directory into an existing model (the config is not read: the model's own decides
 * which tensors are expected). Parameters added by extension points (inserted blocks, prefix adapters, modality
 * experts, extra heads) are never expected and keep their values, so a plain checkpoint loads into a fused model;
 * route by modality after loading so that the experts start from the loaded weights. Nothing is assigned
 * unless every check passes.
 */
export async function loadPretrainedWeights(
  model: CausalLM,
  dirOrId: string,
  options: Omit<LoadPretrainedOptions, 'tokenizer'> = {},
): Promise<LoadPretrainedReport> {
  const dir = await resolveModelPath(dirOrId, { safetensors: true }, options);
  await assertDirectory(dir);
  return loadWeightsInto(model, dir, await readCheckpointLayout(dir), options.strict ?? true);
}

async function loadWeightsInto(
  model: CausalLM,
  dir: string,
  inFiles: Map<string, FileTensor>,
  strict: boolean,
): Promise<LoadPretrainedReport> {
  const { wanted, missing, unexpected, ignored, tiedHead } = planLoad(expectedHFShapes(model), inFiles, strict, dir, model.config);
  const names = tiedHead ? [...wanted, 'lm_head.weight', 'model.embed_tokens.weight'] : wanted;
  const { tensors } = await loadShardedSafetensors(dir, { names: [...new Set(names)] });
  let state: Record<string, tf.Tensor> = {};
  try {
    if (tiedHead) {
      const equal = tf.tidy(() => tf.all(tf.equal(tensors['lm_head.weight']!, tensors['model.embed_tokens.weight']!)).dataSync()[0]);
      if (!equal) {
        throw new Error(
          `loadPretrained: ${dir} holds an lm_head.weight that differs from model.embed_tokens.weight, but the model ties ` +
            'its head to the embedding (config.json: "tie_word_embeddings": true); set it to false if the head is separate',
        );
      }
      ignored.push('lm_head.weight');
      tensors['lm_head.weight']!.dispose();
      delete tensors['lm_head.weight'];
      if (!wanted.includes('model.embed_tokens.weight')) {
        tensors['model.embed_tokens.weight']!.dispose();
        delete tensors['model.embed_tokens.weight'];
      }
    }
    state = importStateDict(tensors, LLAMA_HF_REMAP, { disposeSource: true });
    model.loadStateDict(state, { strict: false });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
    for (const t of Object.values(state)) t.dispose();
  }
  return { loaded: wanted, missing, unexpected, ignored };
}

interface LoadPlan {
  wanted: string[];
  missing: string[];
  unexpected: string[];
  ignored: string[];
  /** The files hold an lm_head.weight for a tied model, shaped like the embedding (compared when loading). */
  tiedHead: boolean;
}

/**
 * Sorts the files' tensors against the expected HF name -> shape map and throws one error listing every
 * missing (strict), unexpected (strict), wrong-shape and non-float tensor.
 */
function planLoad(
  expected: Map<string, number[]>,
  inFiles: Map<string, FileTensor>,
  strict: boolean,
  dir: string,
  config: Readonly<LlamaConfig>,
): LoadPlan {
  // A tied model has no lm_head; a file that stores one anyway must hold a copy of the embedding (checked below).
  const head = inFiles.get('lm_head.weight');
  const embedding = inFiles.get('model.embed_tokens.weight');
  const tiedHead = !expected.has('lm_head.weight') && !!head && !!embedding && sameShape(head.shape, embedding.shape);

  const ignored: string[] = [];
  const missing: string[] = [];
  const unexpected: string[] = [];
  const wrongShape: string[] = [];
  const wrongDtype: string[] = [];
  const wanted: string[] = [];
  for (const [name, { shape, dtype }] of inFiles) {
    if ((LLAMA_HF_REMAP.ignoreExternal ?? []).some((pattern) => matchName(pattern, name))) ignored.push(name);
    else if (name === 'lm_head.weight' && tiedHead) continue; // compared with the embedding below
    else if (!expected.has(name)) unexpected.push(name);
    else if (!sameShape(shape, expected.get(name)!)) {
      wrongShape.push(`${name}: the config implies [${expected.get(name)!.join(', ')}], the file has [${shape.join(', ')}]`);
    } else if (!FLOAT_DTYPES.has(dtype)) wrongDtype.push(`${name}: ${dtype}`);
    else wanted.push(name);
  }
  for (const name of expected.keys()) if (!inFiles.has(name)) missing.push(name);
  const problems: string[] = [];
  if (wrongShape.length) problems.push(`wrong shape (${wrongShape.length}): ${wrongShape.join('; ')}`);
  if (wrongDtype.length) {
    problems.push(`not floating point (${wrongDtype.length}): ${preview(wrongDtype)} (quantized checkpoints are not supported)`);
  }
  if (strict && missing.length) problems.push(`missing (${missing.length}): ${preview(missing)}`);
  if (strict && unexpected.length) problems.push(`unexpected (${unexpected.length}): ${preview(unexpected)}`);
  if (problems.length) {
    throw new Error(
      `loadPretrained: the weights in ${dir} do not fit the model ${describeModel(config)}:\n  ${problems.join('\n  ')}\n` +
        hints(config, missing, unexpected) +
        'Check that config.json belongs to these weights' +
        (wrongShape.length || wrongDtype.length ? '.' : ', or pass { strict: false } to load a partial checkpoint.'),
    );
  }
  return { wanted, missing, unexpected, ignored, tiedHead };
}

/** HF name -> HF shape of every base-model tensor (extension parameters excluded). */
export function expectedHFShapes(model: CausalLM): Map<string, number[]> {
  const own = model.stateDict();
  const base = Object.keys(own).filter((name) => !isExtensionParameter(name));
  const plan = planRemap(base, LLAMA_HF_REMAP, 'export');
  const shapes = new Map<string, number[]>();
  for (const { source, target, permutation } of plan.entries) {
    const shape = own[source]!.shape;
    shapes.set(target, permutation ? permutation.map((axis) => shape[axis]!) : [...shape]);
  }
  return shapes;
}

/** One dimension of an expected tensor: its size and the config.json fields that set it. */
interface Dim {
  value: number;
  /** The one config.json key that gives this size alone, or null when it is a product or a quotient. */
  key: string | null;
  /** How the config gives it, e.g. `"num_attention_heads" x head_dim = 4 x 8`. */
  text: string;
}

/** The HF tensors a config implies, without building the model: global ones, and one layer's (all layers alike). */
interface ConfigLayout {
  global: Map<string, Dim[]>;
  layer: Map<string, Dim[]>;
  numLayers: number;
}

function configLayout(config: Readonly<LlamaConfig>): ConfigLayout {
  const field = (key: string, value: number): Dim => ({ value, key, text: `"${key}": ${value}` });
  const D = field('hidden_size', config.hiddenSize);
  const V = field('vocab_size', config.vocabSize);
  const I = field('intermediate_size', config.intermediateSize);
  const headDim = headDimOf(config);
  const dh: Dim =
    config.headDim !== null
      ? field('head_dim', headDim)
      : { value: headDim, key: null, text: `head_dim = "hidden_size" / "num_attention_heads" = ${config.hiddenSize} / ${config.numHeads}` };
  const heads = (key: string, count: number): Dim => ({
    value: count * headDim,
    key: null,
    text: `"${key}" x head_dim = ${count} x ${headDim}`,
  });
  const Hq = heads('num_attention_heads', config.numHeads);
  const Hkv = heads('num_key_value_heads', config.numKvHeads);
  const global = new Map<string, Dim[]>([
    ['model.embed_tokens.weight', [V, D]],
    ['model.norm.weight', [D]],
  ]);
  if (!config.tieWordEmbeddings) global.set('lm_head.weight', [V, D]);
  const layer = new Map<string, Dim[]>([
    ['input_layernorm.weight', [D]],
    ['post_attention_layernorm.weight', [D]],
    ['self_attn.q_proj.weight', [Hq, D]],
    ['self_attn.k_proj.weight', [Hkv, D]],
    ['self_attn.v_proj.weight', [Hkv, D]],
    ['self_attn.o_proj.weight', [D, Hq]],
    ['mlp.gate_proj.weight', [I, D]],
    ['mlp.up_proj.weight', [I, D]],
    ['mlp.down_proj.weight', [D, I]],
  ]);
  if (config.attentionBias) {
    layer.set('self_attn.q_proj.bias', [Hq]);
    layer.set('self_attn.k_proj.bias', [Hkv]);
    layer.set('self_attn.v_proj.bias', [Hkv]);
  }
  if (config.attentionOutBias) layer.set('self_attn.o_proj.bias', [D]);
  if (config.qkNorm !== null) {
    for (const which of ['q_norm', 'k_norm']) {
      layer.set(`self_attn.${which}.weight`, [dh]);
      if (config.qkNorm === 'layer') layer.set(`self_attn.${which}.bias`, [dh]);
    }
  }
  if (config.mlpBias) {
    layer.set('mlp.gate_proj.bias', [I]);
    layer.set('mlp.up_proj.bias', [I]);
    layer.set('mlp.down_proj.bias', [D]);
  }
  return { global, layer, numLayers: config.numLayers };
}

const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)$/;

/** The expected dims of an HF tensor name under `layout`, or undefined when the config implies no such tensor. */
function dimsOf(layout: ConfigLayout, name: string): Dim[] | undefined {
  const global = layout.global.get(name);
  if (global) return global;
  const match = LAYER_NAME.exec(name);
  if (!match || Number(match[1]) >= layout.numLayers || String(Number(match[1])) !== match[1]) return undefined;
  return layout.layer.get(match[2]!);
}

/**
 * HF name -> HF shape of every base-model tensor the config implies, computed from the config alone: the same map
 * expectedHFShapes reads off a built model (tested equal), at no allocation. Call it only for a bounded config.
 */
export function expectedShapesFromConfig(config: Readonly<LlamaConfig>): Map<string, number[]> {
  const layout = configLayout(config);
  const shapes = new Map<string, number[]>();
  const values = (dims: Dim[]) => dims.map((d) => d.value);
  shapes.set('model.embed_tokens.weight', values(layout.global.get('model.embed_tokens.weight')!));
  for (let i = 0; i < layout.numLayers; i++) {
    for (const [name, dims] of layout.layer) shapes.set(`model.layers.${i}.${name}`, values(dims));
  }
  for (const [name, dims] of layout.global) if (!shapes.has(name)) shapes.set(name, values(dims));
  return shapes;
}

/**
 * Parameters and tensors of the config's model, and its largest tensor, counted in float64 (exact far past 2^32)
 * from one layer's tensors times the layer count, so a config claiming a million layers costs nothing to count.
 */
function parameterCounts(layout: ConfigLayout): { total: number; tensors: number; largest: { name: string; elements: number } } {
  let largest = { name: '', elements: 0 };
  const count = (name: string, dims: Dim[]) => {
    const elements = dims.reduce((n, d) => n * d.value, 1);
    if (elements > largest.elements) largest = { name, elements };
    return elements;
  };
  let perLayer = 0;
  for (const [name, dims] of layout.layer) perLayer += count(`model.layers.0.${name}`, dims);
  let total = perLayer * layout.numLayers;
  for (const [name, dims] of layout.global) total += count(name, dims);
  return { total, tensors: layout.layer.size * layout.numLayers + layout.global.size, largest };
}

/**
 * What a tensor costs to build besides its float32 values (the variable, its module, map entries), so that a
 * config of a million tiny layers counts as large too.
 */
const TENSOR_OVERHEAD_BYTES = 4096;
/** Up to this much of a model may come from fresh initialisation rather than from the files. */
const FRESH_PARAMETER_SLACK_BYTES = 64 * 1024 * 1024;
/** A config may describe at most this many times the cost of the matching tensors in the files. */
const MAX_CONFIG_TO_WEIGHTS_RATIO = 4;

/**
 * Checks what config.json claims against what the weights' headers hold, before anything is allocated: every
 * tensor the files hold must have the shape the config gives it, a strict load needs the config's layer count, and
 * the model must not be far larger than its weights (or than the machine). Errors name config.json, the field, the
 * value it claims and what the weights say.
 */
function checkConfigAgainstWeights(config: LlamaConfig, inFiles: Map<string, FileTensor>, dir: string, strict: boolean): void {
  const configPath = nodePath.join(dir, 'config.json');
  const layout = configLayout(config);
  const advice = 'use the config.json that was saved with these weights';

  // 1. Every tensor the config has a place for must agree on each dimension; blame the first field that differs.
  for (const [name, tensor] of inFiles) {
    const dims = dimsOf(layout, name);
    if (!dims) continue;
    const expected = dims.map((d) => d.value);
    if (sameShape(tensor.shape, expected)) continue;
    const at = tensor.shape.length === dims.length ? dims.findIndex((d, i) => d.value !== tensor.shape[i]) : -1;
    const dim = at >= 0 ? dims[at]! : undefined;
    const says = dim?.key ? `, which means "${dim.key}": ${tensor.shape[at]}` : '';
    throw new Error(
      `loadPretrained: ${configPath} says ${dim ? dim.text : `[${dims.map((d) => d.text).join(', ')}]`}, but ${name} in ` +
        `${tensor.file} is [${tensor.shape.join(', ')}] where the config implies [${expected.join(', ')}]${says}; ${advice}`,
    );
  }

  // 2. A strict load needs every layer the config claims.
  const layers = new Set<number>();
  for (const name of inFiles.keys()) {
    const match = LAYER_NAME.exec(name);
    if (match && String(Number(match[1])) === match[1]) layers.add(Number(match[1]));
  }
  const held = layers.size ? Math.max(...layers) + 1 : 0;
  if (strict && held !== config.numLayers) {
    throw new Error(
      `loadPretrained: ${configPath} says "num_hidden_layers": ${config.numLayers}, but the weights in ${dir} hold ` +
        (held ? `layers model.layers.0 to model.layers.${held - 1} (${held})` : 'no model.layers.* tensors') +
        `; ${advice}, or pass { strict: false } to load a partial checkpoint`,
    );
  }

  // 3. Size: what the config would allocate, against the one-array limit, the machine and the weights.
  const { total, tensors, largest } = parameterCounts(layout);
  const bytes = total * 4;
  const modelText = `${configPath} describes a model of ${total} parameters (${formatBytes(bytes)} as float32)`;
  const claims =
    `; it claims "num_hidden_layers": ${config.numLayers}, "vocab_size": ${config.vocabSize}, "hidden_size": ` +
    `${config.hiddenSize}, "intermediate_size": ${config.intermediateSize}`;
  if (largest.elements > bufferConstants.MAX_LENGTH) {
    throw new Error(
      `loadPretrained: ${configPath} implies ${largest.name} of ${largest.elements} elements, more than the largest array ` +
        `Node.js can allocate (${bufferConstants.MAX_LENGTH})${claims}; ${advice}`,
    );
  }
  if (bytes > os.totalmem()) {
    throw new Error(`loadPretrained: ${modelText}, more than this machine's memory (${formatBytes(os.totalmem())})${claims}; ${advice}`);
  }
  let fileBytes = 0;
  let fileTensors = 0;
  for (const [name, tensor] of inFiles) {
    if (!dimsOf(layout, name)) continue;
    fileBytes += tensor.shape.reduce((n, d) => n * d, 1) * 4;
    fileTensors++;
  }
  const cost = bytes + tensors * TENSOR_OVERHEAD_BYTES;
  const fileCost = fileBytes + fileTensors * TENSOR_OVERHEAD_BYTES;
  if (cost > MAX_CONFIG_TO_WEIGHTS_RATIO * fileCost + FRESH_PARAMETER_SLACK_BYTES) {
    throw new Error(
      `loadPretrained: ${modelText} in ${tensors} tensors, more than ${MAX_CONFIG_TO_WEIGHTS_RATIO} times what the ` +
        `weights in ${dir} hold for it (${fileTensors} matching tensors, ${formatBytes(fileBytes)}, ${held} layers)${claims}; ` +
        `${advice}. To initialise most of a model afresh on purpose, build it with new CausalLM(config) and call ` +
        'loadPretrainedWeights(model, dir, { strict: false })',
    );
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${bytes} bytes`;
}

/** Name -> shape, dtype and file of every tensor in the directory's safetensors files, from their headers only. */
async function readCheckpointLayout(dir: string): Promise<Map<string, FileTensor>> {
  const out = new Map<string, FileTensor>();
  const indexPath = nodePath.join(dir, 'model.safetensors.index.json');
  const files: string[] = [];
  let assigned: Record<string, string> | null = null;
  if (await isFile(indexPath)) {
    const { weightMap } = await readSafetensorsIndex(indexPath).catch((error: unknown) => {
      // core's errors name the index; anything else (a RangeError on a hostile index) gets the name added.
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(message.includes(indexPath) ? `loadPretrained: ${message}` : `loadPretrained: ${indexPath}: ${message}`);
    });
    assigned = weightMap;
    files.push(...new Set(Object.values(weightMap)));
  } else if (await isFile(nodePath.join(dir, 'model.safetensors'))) {
    files.push('model.safetensors');
  } else {
    const present = await fs.readdir(dir);
    const torchFiles = present.filter((name) => /^pytorch_model.*\.bin(\.index\.json)?$/.test(name));
    throw new Error(
      `loadPretrained: ${dir} holds neither model.safetensors nor model.safetensors.index.json` +
        (torchFiles.length
          ? ` (it has ${torchFiles.join(', ')}, PyTorch's pickle format, which is not read here); convert it once with ` +
            'Python: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)'
          : '; copy the model\'s safetensors files into it'),
    );
  }
  for (const file of files) {
    const header = await readSafetensorsHeader(nodePath.join(dir, file)).catch((error: Error) => {
      throw new Error(`loadPretrained: ${error.message}`);
    });
    for (const entry of header.entries) {
      // Through an index, a tensor counts where the index puts it (a shard holding others fails when loading).
      if (assigned && !(Object.prototype.hasOwnProperty.call(assigned, entry.name) && assigned[entry.name] === file)) continue;
      out.set(entry.name, { shape: entry.shape, dtype: entry.dtype, file });
    }
  }
  return out;
}

function hints(config: Readonly<LlamaConfig>, missing: string[], unexpected: string[]): string {
  const out: string[] = [];
  if (missing.includes('lm_head.weight')) {
    out.push('The files have no lm_head.weight: if the head is tied to the embedding, config.json should say "tie_word_embeddings": true.');
  }
  if (unexpected.includes('lm_head.weight') && config.tieWordEmbeddings) {
    out.push('The files have an lm_head.weight unlike the embedding, but config.json says "tie_word_embeddings": true.');
  }
  if (unexpected.some((n) => /_proj\.bias$/.test(n)) && !config.attentionBias && !config.mlpBias) {
    out.push('The files have projection biases the config does not enable (attention_bias / mlp_bias, or model_type "qwen2").');
  }
  if (unexpected.length && unexpected.every((n) => !n.startsWith('model.') && n !== 'lm_head.weight')) {
    out.push('The names lack the "model." prefix of a *ForCausalLM checkpoint (a bare base model, or a composite such as LLaVA\'s language_model.*).');
  }
  return out.map((line) => `${line}\n`).join('');
}

function describeModel(config: Readonly<LlamaConfig>): string {
  return (
    `(model_type "${config.modelType}", ${config.numLayers} layers, hidden ${config.hiddenSize}, ` +
    `${config.numHeads} heads / ${config.numKvHeads} KV heads, vocab ${config.vocabSize}` +
    `${config.tieWordEmbeddings ? ', tied head' : ''})`
  );
}

/** The folder exists (else a message that helps), and a save into it that a kill interrupted is finished. */
async function assertDirectory(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (stat?.isDirectory()) {
    await recoverDirectory(dir);
    return;
  }
  throw new Error(
    `loadPretrained: ${dir} is not a directory; pass the folder that holds config.json and the safetensors files, ` +
      "or a Hub model id ('org/name')",
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    const { size } = await fs.stat(path);
    if (size > MAX_CONFIG_FILE_BYTES) {
      throw new Error(`${size} bytes, where an HF config holds a few KB; this is not a config file`);
    }
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`loadPretrained: cannot read ${path} (${(error as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`loadPretrained: ${path} is not valid JSON (${(error as Error).message})`);
  }
}

async function isFile(path: string): Promise<boolean> {
  const stat = await fs.stat(path).catch(() => null);
  return stat?.isFile() ?? false;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function preview(names: string[], limit = 12): string {
  return names.slice(0, limit).join(', ') + (names.length > limit ? `, ... (${names.length - limit} more)` : '');
}
