/**
 * Module checkpoints: save a Module's state dict (all of it, or only the trainable parameters) to a
 * safetensors file or a sharded directory, and load one back. A trainable-only checkpoint loads on top of
 * frozen pretrained parts, the OpenFlamingo pattern (Awadalla et al., 2023): the frozen part may be absent
 * from it, but it must hold every trainable parameter and nothing the module lacks.
 */
import type * as tf from '@tensorflow/tfjs';
import { matchName, type LoadStateDictResult, type Module, type NamePattern } from '../nn/module';
import { setOwn } from './header';
import { exportStateDict, importStateDict, type RemapTable } from './remap';
import { saveSafetensors, type SaveSafetensorsOptions } from './safetensors';
import { loadShardedSafetensors, saveShardedSafetensors } from './sharded';

/** Metadata key recording what a checkpoint holds: 'full' or 'trainable'. */
export const CHECKPOINT_KIND_KEY = 'chimera.checkpoint';

/** Options of {@link saveCheckpoint}. */
export interface SaveCheckpointOptions extends SaveSafetensorsOptions {
  /** Save only trainable parameters (plus `include`); frozen parameters and buffers are left out. */
  trainableOnly?: boolean;
  /** With trainableOnly: more state-dict keys to keep, e.g. buffers updated during training (EMA codebooks). */
  include?: NamePattern;
  /** String metadata written into the file header(s). */
  metadata?: Record<string, string>;
  /** Shard size bound when `path` is a directory (see saveShardedSafetensors). */
  maxShardBytes?: number;
  /** Export through a remap table (Chimera names/layouts -> external ones), e.g. to write an HF checkpoint. */
  remap?: RemapTable;
}

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Every module key must be present and no extra keys given (default true). */
  strict?: boolean;
  /** Import through a remap table (external names/layouts -> Chimera ones). */
  remap?: RemapTable;
}

/** The state dict a checkpoint save writes; the tensors are the module's live variables (do not dispose). */
export function checkpointStateDict(module: Module, options: Pick<SaveCheckpointOptions, 'trainableOnly' | 'include'> = {}) {
  const all = module.stateDict();
  if (!options.trainableOnly) return all;
  const trainable = new Set(module.namedParameters().filter(([, v]) => v.trainable).map(([name]) => name));
  const out: Record<string, tf.Tensor> = {};
  for (const [name, tensor] of Object.entries(all)) {
    if (trainable.has(name) || (options.include !== undefined && matchName(options.include, name))) setOwn(out, name, tensor);
  }
  return out;
}

/**
 * Saves a module. A path ending in `.safetensors` is one file; any other path is a directory written in the HF
 * sharded layout. Writes are atomic per file. Returns the saved keys (after remapping).
 */
export async function saveCheckpoint(module: Module, path: string, options: SaveCheckpointOptions = {}): Promise<string[]> {
  const state = checkpointStateDict(module, options);
  const metadata = { ...options.metadata, [CHECKPOINT_KIND_KEY]: options.trainableOnly ? 'trainable' : 'full' };
  const exported = options.remap ? exportStateDict(state, options.remap) : state;
  try {
    if (path.endsWith('.safetensors')) await saveSafetensors(path, exported, metadata, options);
    else await saveShardedSafetensors(path, exported, { ...options, metadata });
    return Object.keys(exported);
  } finally {
    if (exported !== state) for (const t of Object.values(exported)) t.dispose();
  }
}

/** Reads a checkpoint (file, directory or index) and applies the import remap; the caller owns the tensors. */
async function readCheckpoint(path: string, remap: RemapTable | undefined): Promise<Record<string, tf.Tensor>> {
  const { tensors } = await loadShardedSafetensors(path);
  if (!remap) return tensors;
  try {
    return importStateDict(tensors, remap);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Loads a checkpoint into a module (strict by default). Nothing is assigned unless the whole dict fits. */
export async function loadCheckpoint(
  module: Module,
  path: string,
  options: LoadCheckpointOptions = {},
): Promise<LoadStateDictResult> {
  const state = await readCheckpoint(path, options.remap);
  try {
    return module.loadStateDict(state, { strict: options.strict ?? true });
  } finally {
    for (const t of Object.values(state)) t.dispose();
  }
}

/**
 * Loads a trainable-only checkpoint on top of a module whose frozen parts are already loaded. Frozen keys may
 * be absent; but a key the module lacks, or a trainable parameter the checkpoint lacks, is an error (the
 * checkpoint is for a different model, or the freezing policy changed since it was saved).
 */
export async function loadTrainableCheckpoint(
  module: Module,
  path: string,
  options: Pick<LoadCheckpointOptions, 'remap'> = {},
): Promise<LoadStateDictResult> {
  const state = await readCheckpoint(path, options.remap);
  try {
    const own = module.stateDict();
    const unexpected = Object.keys(state).filter((k) => !Object.prototype.hasOwnProperty.call(own, k));
    const missingTrainable = module
      .namedParameters()
      .filter(([name, v]) => v.trainable && !Object.prototype.hasOwnProperty.call(state, name))
      .map(([name]) => name);
    if (unexpected.length || missingTrainable.length) {
      const problems: string[] = [];
      if (unexpected.length) problems.push(`keys the module lacks (${unexpected.length}): ${preview(unexpected)}`);
      if (missingTrainable.length) {
        problems.push(`trainable parameters the checkpoint lacks (${missingTrainable.length}): ${preview(missingTrainable)}`);
      }
      throw new Error(
        `${module.constructor.name}: trainable checkpoint ${path} does not fit:\n  ${problems.join('\n  ')}\n` +
          'Freeze the same parameters as when it was saved, or load it with loadCheckpoint({ strict: false }).',
      );
    }
    return module.loadStateDict(state, { strict: false });
  } finally {
    for (const t of Object.values(state)) t.dispose();
  }
}

function preview(names: string[]): string {
  return names.slice(0, 8).join(', ') + (names.length > 8 ? ', ...' : '');
}
