/**
 * Loads a Hugging Face model directory (Llama, SmolLM, Qwen2, Qwen3) into a CausalLM: config.json,
 * generation_config.json (end-of-sequence ids), the weights as model.safetensors or sharded through
 * model.safetensors.index.json (F32, F16 or BF16 on disk), and the tokenizer files when present.
 *
 *   const { model, tokenizer, config } = await loadPretrained('./SmolLM-135M');
 *   await loadPretrainedWeights(fusedModel, './SmolLM-135M');   // a plain checkpoint into an extended model
 *
 * The weights are checked against the config before any tensor data is read: missing, unexpected and
 * wrong-shape tensors are reported together, under their names in the files. Downloading from the HF Hub is not
 * built in (the tests and CI run offline); fetch a model once with
 * `huggingface-cli download HuggingFaceTB/SmolLM-135M --local-dir ./SmolLM-135M` and pass the directory.
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import {
  importStateDict,
  loadShardedSafetensors,
  matchName,
  planRemap,
  readSafetensorsHeader,
  readSafetensorsIndex,
} from '@chimera/core';
import { configFromHF, validateConfig, type LlamaConfig } from '../config';
import { CausalLM } from '../model/causal-lm';
import { isExtensionParameter } from '../model/extension-points';
import { HFTokenizer } from '../tokenizers/hf-tokenizer';
import { LLAMA_HF_REMAP } from './hf-keys';

export interface LoadPretrainedOptions {
  /**
   * Every tensor the config implies must be in the files and nothing else (default true). With false, missing
   * tensors keep their current values and unexpected ones are skipped; a wrong shape is always an error.
   */
  strict?: boolean;
  /** Load tokenizer.json (and tokenizer_config.json) when the directory has it (default true). */
  tokenizer?: boolean;
}

export interface PretrainedModel {
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
}

/** Reads config.json (and generation_config.json's eos ids) from an HF directory. */
export async function readPretrainedConfig(
  dir: string,
): Promise<{ config: LlamaConfig; generationConfig?: Record<string, unknown> }> {
  await assertDirectory(dir);
  const raw = await readJson(nodePath.join(dir, 'config.json'));
  if (raw === undefined) {
    throw new Error(`loadPretrained: ${dir} has no config.json; an HF model directory needs config.json next to its weights`);
  }
  let config = configFromHF(raw);
  const generationConfig = await readJson(nodePath.join(dir, 'generation_config.json'));
  if (generationConfig === undefined) return { config };
  if (generationConfig === null || typeof generationConfig !== 'object' || Array.isArray(generationConfig)) {
    throw new Error(`loadPretrained: ${dir}/generation_config.json must hold a JSON object`);
  }
  const generation = generationConfig as Record<string, unknown>;
  const eos = generation.eos_token_id;
  if (eos !== undefined && eos !== null) {
    const ids = Array.isArray(eos) ? eos : [eos];
    if (ids.length === 0 || ids.some((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= config.vocabSize)) {
      throw new Error(
        `generation_config.json: "eos_token_id" must be a token id or a list of token ids in [0, ${config.vocabSize}), ` +
          `got ${JSON.stringify(eos)}`,
      );
    }
    config = { ...config, eosTokenId: ids.length === 1 ? (ids[0] as number) : [...(ids as number[])] };
    validateConfig(config);
  }
  return { config, generationConfig: generation };
}

/**
 * Builds a CausalLM from an HF model directory and loads its weights (strict by default) and, when present, its
 * tokenizer. The caller owns the model: dispose it when done.
 */
export async function loadPretrained(dir: string, options: LoadPretrainedOptions = {}): Promise<PretrainedModel> {
  const { config, generationConfig } = await readPretrainedConfig(dir);
  const model = new CausalLM(config);
  try {
    await loadPretrainedWeights(model, dir, { strict: options.strict });
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
  dir: string,
  options: Pick<LoadPretrainedOptions, 'strict'> = {},
): Promise<LoadPretrainedReport> {
  const strict = options.strict ?? true;
  await assertDirectory(dir);
  const inFiles = await readCheckpointLayout(dir);
  const expected = expectedHFShapes(model);
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
      `loadPretrained: the weights in ${dir} do not fit the model ${describeModel(model.config)}:\n  ${problems.join('\n  ')}\n` +
        hints(model.config, missing, unexpected) +
        'Check that config.json belongs to these weights' +
        (wrongShape.length || wrongDtype.length ? '.' : ', or pass { strict: false } to load a partial checkpoint.'),
    );
  }

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

/** HF name -> HF shape of every base-model tensor (extension parameters excluded). */
function expectedHFShapes(model: CausalLM): Map<string, number[]> {
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

/** Name -> shape and dtype of every tensor in the directory's safetensors files, from their headers only. */
async function readCheckpointLayout(dir: string): Promise<Map<string, FileTensor>> {
  const out = new Map<string, FileTensor>();
  const indexPath = nodePath.join(dir, 'model.safetensors.index.json');
  const files: string[] = [];
  if (await isFile(indexPath)) {
    const { weightMap } = await readSafetensorsIndex(indexPath);
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
    for (const entry of header.entries) out.set(entry.name, { shape: entry.shape, dtype: entry.dtype });
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

async function assertDirectory(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (stat?.isDirectory()) return;
  const looksLikeHubId = !stat && /^[\w.-]+\/[\w.-]+$/.test(dir) && !dir.startsWith('.');
  throw new Error(
    `loadPretrained: ${dir} is not a directory` +
      (looksLikeHubId
        ? `; downloading from the HF Hub is not built in: run \`huggingface-cli download ${dir} --local-dir DIR\` once and pass DIR`
        : '; pass the folder that holds config.json and the safetensors files'),
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
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
