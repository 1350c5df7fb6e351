/**
 * LlamaGen's VQ checkpoint layout, which Janus ships under `gen_vision_model.`: the same names as VQModel's state
 * dict, PyTorch layouts (conv weights [out, in, kH, kW]). Import takes a bare VQ checkpoint or a whole Janus
 * checkpoint (only `gen_vision_model.*` is read); export writes bare keys (or a prefix) that PyTorch loads strictly.
 */
import * as tf from '@tensorflow/tfjs';
import { loadShardedSafetensors, planRemap, remapStateDict, type RemapTable } from '@chimera/core';
import type { VQModel } from '../model/vq-model';

/** Where Janus keeps its generation VQ in a full checkpoint. */
export const JANUS_VQ_PREFIX = 'gen_vision_model.';

/** The key table of `model`: names kept, 4-D conv weights transposed between PyTorch and tfjs layouts. */
export function llamaGenVQTable(model: VQModel, prefix = ''): RemapTable {
  const rules = Object.entries(model.stateDict()).map(([name, tensor]) => ({
    external: `${prefix}${name}`,
    internal: name,
    ...(tensor.rank === 4 ? { layout: 'conv2d' as const } : {}),
  }));
  return { rules, unmatched: 'error' };
}

/** Options of {@link importLlamaGenVQ} and {@link loadLlamaGenVQ}. */
export interface LlamaGenImportOptions {
  /** Key prefix of the VQ tensors; default: JANUS_VQ_PREFIX when any key has it, else none. */
  prefix?: string;
}

/**
 * Loads PyTorch-layout tensors (not disposed) into `model`. With a prefix, keys outside it (a Janus checkpoint's
 * language model and aligners) are ignored; without one, every key must be a VQ key. Missing, unexpected and
 * mis-shaped tensors are refused, naming them.
 */
export function importLlamaGenVQ(model: VQModel, tensors: Record<string, tf.Tensor>, options: LlamaGenImportOptions = {}): void {
  const names = Object.keys(tensors);
  const prefix = options.prefix ?? (names.some((n) => n.startsWith(JANUS_VQ_PREFIX)) ? JANUS_VQ_PREFIX : '');
  const own = prefix ? Object.fromEntries(Object.entries(tensors).filter(([n]) => n.startsWith(prefix))) : tensors;
  if (prefix && Object.keys(own).length === 0) {
    throw new Error(`importLlamaGenVQ: no tensor starts with '${prefix}'; pass the VQ checkpoint itself, or the prefix its keys use`);
  }
  const table = llamaGenVQTable(model, prefix);
  const expected = new Set(table.rules.map((r) => r.external as string));
  const unexpected = Object.keys(own).filter((n) => !expected.has(n));
  const missing = [...expected].filter((n) => !(n in own));
  if (unexpected.length || missing.length) {
    const list = (xs: string[]) => `${xs.slice(0, 6).join(', ')}${xs.length > 6 ? `, ... (${xs.length} in all)` : ''}`;
    throw new Error(
      `importLlamaGenVQ: the checkpoint does not match this VQModel's config` +
        (missing.length ? `; missing: ${list(missing)}` : '') +
        (unexpected.length ? `; unexpected: ${list(unexpected)}` : '') +
        '. Build the VQModel with the config the checkpoint was trained with (channels, channelMult, numResBlocks, attention, codebook size)',
    );
  }
  planRemap(Object.keys(own), table, 'import');
  const state = remapStateDict(own, table, 'import');
  try {
    model.loadStateDict(state);
  } finally {
    tf.dispose(Object.values(state));
  }
}

/** PyTorch-layout tensors of `model` (the caller disposes them), keys with `prefix` (default none). */
export function exportLlamaGenVQ(model: VQModel, prefix = ''): Record<string, tf.Tensor> {
  return remapStateDict(model.stateDict(), llamaGenVQTable(model, prefix), 'export');
}

/** Reads a safetensors file or checkpoint folder (LlamaGen VQ or a whole Janus checkpoint) into `model`. */
export async function loadLlamaGenVQ(model: VQModel, path: string, options: LlamaGenImportOptions = {}): Promise<void> {
  const { tensors } = await loadShardedSafetensors(path);
  try {
    importLlamaGenVQ(model, tensors, options);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
