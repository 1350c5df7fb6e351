/**
 * A composed LLaVA-style model to and from an HF LlavaForConditionalGeneration folder (model.safetensors in F32 +
 * config.json), the hand-over to PyTorch for training past one machine (docs/scaling.md):
 *
 *   import * as visionEncoder from '@chimera/vision-encoder';
 *   await exportLlava(model, 'out/llava-hf', { visionEncoder });     // transformers: LlavaForConditionalGeneration.from_pretrained
 *   await loadLlavaWeights(model, 'trained/', { visionEncoder });     // the folder PyTorch's save_pretrained wrote
 *
 * Export writes the 'transformers<4.52' key layout by default (see llava-keys.ts); loading reads either layout,
 * from one file or a sharded index. The folder's config.json must describe the model it loads into.
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import {
  checkpointTensorNames,
  exportStateDict,
  importStateDict,
  loadShardedSafetensors,
  readCheckpointConfig,
  recoverDirectory,
  saveHFModelFolder,
} from '@chimera/core';
import type { ComposedModel } from '../composed-model';
import { llavaConfigDifferences, llavaConfigJson } from './llava-config';
import { LLAVA_LAYOUTS, detectLlavaLayout, llavaRemapTable, type LlavaLayout } from './llava-keys';
import { disposeAll, llavaParts, type LlavaVisionEncoderFunctions } from './llava-parts';

/** Options of exportLlava. */
export interface ExportLlavaOptions {
  /** `@chimera/vision-encoder` (its CLIP/SigLIP key table and config writer): `import * as visionEncoder from ...`. */
  visionEncoder: LlavaVisionEncoderFunctions;
  /** The image modality (default: the model's only one). */
  modality?: string;
  /** Key layout (default 'transformers<4.52', which every transformers version since 4.36 loads). */
  layout?: LlavaLayout;
}

/** What exportLlava wrote. */
export interface ExportLlavaResult {
  /** Tensor names written. */
  keys: string[];
  /** The config.json written. */
  config: Record<string, unknown>;
}

/**
 * Writes `dir/model.safetensors` (HF names and layouts, F32) and `dir/config.json` (LlavaConfig), replacing an
 * earlier export in `dir` as one unit. Every check runs before a file is touched.
 */
export async function exportLlava(model: ComposedModel, dir: string, options: ExportLlavaOptions): Promise<ExportLlavaResult> {
  const layout = checkLayout(options.layout ?? 'transformers<4.52');
  const parts = llavaParts(model, options.visionEncoder, options.modality);
  const config = llavaConfigJson(model, parts);
  const tensors = exportStateDict(model.stateDict(), llavaRemapTable(parts, options.visionEncoder, layout));
  try {
    await saveHFModelFolder(dir, tensors, config, 'export the LLaVA model');
    return { keys: Object.keys(tensors), config };
  } finally {
    disposeAll(tensors);
  }
}

/** Options of loadLlavaWeights. */
export interface LoadLlavaOptions {
  /** `@chimera/vision-encoder`, as for exportLlava. */
  visionEncoder: LlavaVisionEncoderFunctions;
  /** The image modality (default: the model's only one). */
  modality?: string;
}

/** What loadLlavaWeights read. */
export interface LoadLlavaResult {
  /** The key layout the folder was in. */
  layout: LlavaLayout;
  /** Tensors read (the files' names). */
  loaded: string[];
}

/**
 * Loads an HF LLaVA folder (ours, or one PyTorch's save_pretrained wrote) into a composed model built with the
 * same parts. Strict: config.json must describe this model, and every parameter must be in the files with its
 * shape and nothing else; nothing is assigned unless every check passes.
 */
export async function loadLlavaWeights(model: ComposedModel, dir: string, options: LoadLlavaOptions): Promise<LoadLlavaResult> {
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new Error(`loadLlavaWeights: ${dir} is not a directory; pass the folder holding config.json and the safetensors`);
  await recoverDirectory(dir); // an export killed mid-save is finished (or cleared) first
  const parts = llavaParts(model, options.visionEncoder, options.modality);
  const found = await readCheckpointConfig(dir, 'loadLlavaWeights');
  if (found === null) throw new Error(`loadLlavaWeights: ${dir} has no config.json; an HF LLaVA folder keeps it next to the weights`);
  const differences = llavaConfigDifferences(llavaConfigJson(model, parts), found, `${dir}/config.json`);
  if (differences.length) {
    throw new Error(
      `loadLlavaWeights: ${dir}/config.json does not describe this model:\n  ${differences.join('\n  ')}\n` +
        'Build the model with the settings the checkpoint was trained with (or load the checkpoint it came from).',
    );
  }
  const names = await checkpointTensorNames(dir, 'loadLlavaWeights');
  const layout = detectLlavaLayout(names, dir);
  const { tensors } = await loadShardedSafetensors(dir);
  let state: Record<string, tf.Tensor> = {};
  try {
    try {
      state = importStateDict(tensors, llavaRemapTable(parts, options.visionEncoder, layout), { disposeSource: true });
      model.loadStateDict(state);
    } catch (error) {
      throw new Error(`loadLlavaWeights: the weights in ${dir} do not fit this model: ${(error as Error).message}`);
    }
    return { layout, loaded: names };
  } finally {
    disposeAll(tensors);
    disposeAll(state);
  }
}

function checkLayout(layout: LlavaLayout): LlavaLayout {
  if (!LLAVA_LAYOUTS.includes(layout)) {
    throw new Error(`exportLlava: layout must be ${LLAVA_LAYOUTS.map((l) => `'${l}'`).join(' or ')}, got ${JSON.stringify(layout)}`);
  }
  return layout;
}
