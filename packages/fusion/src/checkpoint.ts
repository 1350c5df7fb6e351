/**
 * Checkpoints of a composed model through core's checkpoint functions. A trainable-only checkpoint (the
 * OpenFlamingo pattern: only the projector, resampler or cross-attention blocks) records which parameters were
 * trainable; loading it onto freshly built frozen parts restores those values and that trainable set, so a run
 * continues exactly as saved. A full checkpoint loads strictly and leaves the trainable flags alone.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  CHECKPOINT_KIND_KEY,
  loadCheckpoint,
  loadShardedSafetensors,
  loadTrainableCheckpoint,
  saveCheckpoint,
  type LoadStateDictResult,
  type Module,
  type SaveSafetensorsOptions,
} from '@chimera/core';

/** Metadata key holding the JSON list of parameter names that were trainable when the checkpoint was saved. */
export const TRAINABLE_NAMES_KEY = 'chimera.fusion.trainable';

/** Options of {@link saveComposed} and `ComposedModel.save`. */
export interface SaveComposedOptions extends SaveSafetensorsOptions {
  /** Save only the trainable parameters (default false: everything). */
  trainableOnly?: boolean;
  /** String metadata written into the header(s), next to the trainable names. */
  metadata?: Record<string, string>;
  /** Shard size bound when `path` is a directory. */
  maxShardBytes?: number;
}

/** Options of {@link loadComposed} and `ComposedModel.load`. */
export interface LoadComposedOptions {
  /** For full checkpoints: every key must be present and none extra (default true). */
  strict?: boolean;
}

/** Saves to `path` (a `.safetensors` file, or a directory in the HF sharded layout). Returns the saved keys. */
export async function saveComposed(model: Module, path: string, options: SaveComposedOptions = {}): Promise<string[]> {
  const trainable = uniqueParameters(model)
    .filter(([, v]) => v.trainable)
    .map(([name]) => name);
  if (options.trainableOnly && trainable.length === 0) {
    throw new Error('save({ trainableOnly: true }): no parameter is trainable, so the checkpoint would be empty; call model.trainOnly(...) first');
  }
  return saveCheckpoint(model, path, {
    ...options,
    trainableOnly: options.trainableOnly ?? false,
    metadata: { ...options.metadata, [TRAINABLE_NAMES_KEY]: JSON.stringify(trainable) },
  });
}

/** Loads a checkpoint written by saveComposed (or core's saveCheckpoint). */
export async function loadComposed(model: Module, path: string, options: LoadComposedOptions = {}): Promise<LoadStateDictResult> {
  const { metadata } = await loadShardedSafetensors(path, { names: [] });
  if (metadata[CHECKPOINT_KIND_KEY] !== 'trainable') return loadCheckpoint(model, path, { strict: options.strict ?? true });
  const recorded = metadata[TRAINABLE_NAMES_KEY];
  if (recorded !== undefined) {
    const names = parseNames(recorded, path);
    const own = new Map(uniqueParameters(model));
    const unknown = names.filter((n) => !own.has(n));
    if (unknown.length > 0) {
      throw new Error(
        `${path}: the checkpoint trained ${unknown.length} parameter(s) this model lacks (${unknown.slice(0, 6).join(', ')}` +
          `${unknown.length > 6 ? ', ...' : ''}); it was saved from a model composed differently`,
      );
    }
    const wanted = new Set(names);
    for (const [name, v] of own) v.trainable = wanted.has(name);
  }
  return loadTrainableCheckpoint(model, path);
}

function parseNames(text: string, path: string): string[] {
  try {
    const names = JSON.parse(text) as unknown;
    if (Array.isArray(names) && names.every((n) => typeof n === 'string')) return names as string[];
  } catch {
    // fall through to the error below
  }
  throw new Error(`${path}: metadata '${TRAINABLE_NAMES_KEY}' is not a JSON list of parameter names`);
}

/** namedParameters with each variable once (tied weights under their first name). */
export function uniqueParameters(model: Module): [string, tf.Variable][] {
  const seen = new Set<tf.Variable>();
  return model.namedParameters().filter(([, v]) => !seen.has(v) && (seen.add(v), true));
}
