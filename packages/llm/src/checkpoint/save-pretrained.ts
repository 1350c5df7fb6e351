/**
 * Writes a CausalLM as a Hugging Face model directory that transformers (LlamaForCausalLM, Qwen2ForCausalLM,
 * Qwen3ForCausalLM) and loadPretrained both read: config.json, generation_config.json (token ids), the weights in
 * HF names and [out, in] layout as model.safetensors or shards with model.safetensors.index.json, and the
 * tokenizer files. The export replaces the folder's previous one as one unit (core's commitDirectory): killed at
 * any moment, the folder loads as the old export or the new one; files of the folder it does not write are kept.
 *
 *   await savePretrained(model, './my-model', { tokenizer, dtype: 'BF16' });
 *
 * Only the plain LLM is written: parameters added by extension points (inserted blocks, prefix adapters,
 * modality experts, extra heads) have no place in an HF Llama checkpoint. Save those with core's
 * saveCheckpoint(model, path, { trainableOnly: true }) and load them on top of the base afterwards.
 */
import type * as tf from '@tensorflow/tfjs';
import * as nodePath from 'node:path';
import { commitDirectory, exportStateDict, isCheckpointFile, writeFileAtomic, writeShardedSafetensors } from '@chimera/core';
import { configToHF } from '../config';
import type { CausalLM } from '../model/causal-lm';
import { isExtensionParameter } from '../model/extension-points';
import { LLAMA_HF_REMAP } from './hf-keys';

/** Anything that writes its own files into a directory, such as HFTokenizer. */
export interface SavableTokenizer {
  /** Writes the tokenizer's files into `dir` (a fresh private folder during savePretrained). */
  save(dir: string): Promise<void>;
}

/** Options of {@link savePretrained}. */
export interface SavePretrainedOptions {
  /** Written next to the weights (HFTokenizer writes tokenizer.json and tokenizer_config.json). */
  tokenizer?: SavableTokenizer;
  /** Largest shard in bytes (default 5 GB, HF's); a larger checkpoint is split with an index file. */
  maxShardBytes?: number;
  /** File dtype of the weights (default F32, which round-trips bit for bit; F16 / BF16 round to nearest even). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** What {@link savePretrained} wrote. */
export interface SavePretrainedResult {
  /** Weight and config files written, relative to the directory (the tokenizer's own files are not listed). */
  files: string[];
  /** Tensor names written (HF names). */
  keys: string[];
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/** Saves `model` (and optionally its tokenizer) to `dir` in the HF layout; see the file comment. */
export async function savePretrained(
  model: CausalLM,
  dir: string,
  options: SavePretrainedOptions = {},
): Promise<SavePretrainedResult> {
  const dtype = options.dtype ?? 'F32';
  if (!Object.hasOwn(TORCH_DTYPE, dtype)) {
    throw new Error(`savePretrained: dtype must be 'F32', 'F16' or 'BF16', got ${JSON.stringify(dtype)}`);
  }
  // Before any file is touched: a config HF cannot express fails here.
  const config = model.config;
  const configJson = { ...configToHF(config), torch_dtype: TORCH_DTYPE[dtype] };
  const generationJson = generationConfigOf(configJson);

  const base: Record<string, tf.Tensor> = {};
  for (const [name, tensor] of Object.entries(model.stateDict())) if (!isExtensionParameter(name)) base[name] = tensor;
  const exported = exportStateDict(base, LLAMA_HF_REMAP);
  try {
    const files = await commitDirectory(
      dir,
      async (staging) => {
        const written: string[] = [];
        const saved = await writeShardedSafetensors(staging, exported, {
          maxShardBytes: options.maxShardBytes,
          floatDtype: dtype,
          metadata: { format: 'pt' }, // transformers refuses safetensors files without it
        });
        written.push(...saved.files);
        if (saved.indexPath) written.push(nodePath.basename(saved.indexPath));
        if (generationJson) {
          await writeFileAtomic(nodePath.join(staging, GENERATION_CONFIG), `${JSON.stringify(generationJson, null, 2)}\n`);
          written.push(GENERATION_CONFIG);
        }
        if (options.tokenizer) await options.tokenizer.save(staging);
        await writeFileAtomic(nodePath.join(staging, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
        written.push('config.json');
        return written;
      },
      {
        // The previous export's weights and generation config go; its tokenizer files stay unless replaced.
        stale: (written, existing) => existing.filter((name) => (isCheckpointFile(name) || name === GENERATION_CONFIG) && !written.includes(name)),
        last: ['config.json'],
        what: 'save the pretrained model',
      },
    );
    return { files, keys: Object.keys(exported) };
  } finally {
    for (const t of Object.values(exported)) t.dispose();
  }
}

const GENERATION_CONFIG = 'generation_config.json';

/** HF's generation_config.json: the special token ids generation uses, when the config has any. */
function generationConfigOf(configJson: Record<string, unknown>): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    if (configJson[key] !== null && configJson[key] !== undefined) out[key] = configJson[key];
  }
  return Object.keys(out).length ? out : null;
}
