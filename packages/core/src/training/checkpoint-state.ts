/**
 * Training checkpoints: a directory holding the model's trainable parameters and buffers
 * (model.safetensors), the optimizer moments (optimizer.safetensors) and the trainer's position
 * (trainer.json: step, RNG state, skip counts).
 *
 * Crash safety: a checkpoint folder is written as one unit (weights/directory-commit.ts), so at any kill it
 * holds the old checkpoint or the new one; old checkpoints are pruned by renaming them aside before deleting,
 * so a half-deleted one never looks complete; listing a root removes what killed saves and prunes left behind.
 * Loading reads and checks every file before changing anything, so a damaged checkpoint leaves the model and
 * optimizer as they were.
 */
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module';
import { commitDirectory, recoverDirectory } from '../weights/directory-commit';
import { loadSafetensors, saveSafetensors, writeFileAtomic } from '../weights/safetensors';
import { ownedSuffix, ownerOf, processIsAlive } from '../weights/save-lock';
import type { AdamW, AdamWState } from './adamw';

/** File names inside a training checkpoint folder. */
export const CHECKPOINT_FILES = {
  /** Trainable parameters and buffers. */
  model: 'model.safetensors',
  /** AdamW moments. */
  optimizer: 'optimizer.safetensors',
  /** The {@link TrainerState}, written last (its presence marks a complete checkpoint). */
  trainer: 'trainer.json',
} as const;

const STATE_FORMAT = 'chimera-trainer-state';
const STATE_VERSION = 1;
const STEP_DIR = /^step-(\d+)$/;
/** Old checkpoints are renamed `.step-N.deleting-<pid>-<hex>` before they are deleted. */
const DELETING_MARKER = '.deleting-';

/** Where a run stands; enough, with the model and optimizer files, to continue it exactly. */
export interface TrainerState {
  /** Steps completed: the step a resumed run executes next. */
  step: number;
  /** The global RNG state (globalRandom().getState()) when the checkpoint was taken. */
  rngState: number;
  /** Steps skipped so far because the loss or gradient norm was not finite. */
  skippedSteps: number;
  /** Skipped steps in a row up to `step`. */
  consecutiveSkips: number;
  /** The schedule's rate at `step` (informational: schedules are pure functions of the step). */
  learningRate: number;
}

interface TrainerStateFile extends TrainerState {
  format: typeof STATE_FORMAT;
  version: number;
  optimizerStep: number;
  parameters: string[];
  savedAt: string;
}

/** The objects a training checkpoint is saved from and loaded into. */
export interface CheckpointParts {
  /** The model whose trainable parameters and buffers are saved. */
  model: Module;
  /** The optimizer whose moments are saved. */
  optimizer: AdamW;
}

/** A checkpoint read into memory and checked, not yet applied. `dispose()` frees it; `apply` applies it. */
export interface ReadCheckpoint {
  /** The checkpoint folder. */
  dir: string;
  /** Its trainer state. */
  state: TrainerState;
  /** Copies the weights and moments into the model and optimizer it was checked against; then frees itself. */
  apply(): void;
  /** Frees the tensors read without applying them. */
  dispose(): void;
}

/** Thrown when a checkpoint's files cannot be read or are not a valid checkpoint (as opposed to not fitting the model). */
export class CheckpointDamagedError extends Error {
  /**
   * @param message What is wrong.
   * @param dir The checkpoint folder.
   * @param options The underlying error, if any.
   */
  constructor(
    message: string,
    readonly dir: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CheckpointDamagedError';
  }
}

/** The tensors a checkpoint keeps of a model: trainable parameters and buffers (frozen weights load separately). */
export function checkpointTensors(model: Module): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, v] of model.namedParameters()) if (v.trainable) out[name] = v;
  for (const [name, b] of model.namedBuffers()) out[name] = b;
  return out;
}

/** Writes a complete checkpoint to `dir`, replacing one already there as one unit (trainer.json moves in last). */
export async function saveTrainingCheckpoint(dir: string, parts: CheckpointParts & { state: TrainerState }): Promise<void> {
  const { model, optimizer, state } = parts;
  await commitDirectory(
    dir,
    async (staging) => {
      const modelTensors = checkpointTensors(model);
      await saveSafetensors(join(staging, CHECKPOINT_FILES.model), modelTensors, { format: 'chimera-checkpoint', step: String(state.step) });
      const optimizerState = optimizer.getState();
      await saveSafetensors(join(staging, CHECKPOINT_FILES.optimizer), optimizerState.tensors, {
        format: 'chimera-adamw',
        step: String(optimizerState.step),
        paramSteps: JSON.stringify(optimizerState.paramSteps),
      });
      const file: TrainerStateFile = {
        format: STATE_FORMAT,
        version: STATE_VERSION,
        ...state,
        optimizerStep: optimizerState.step,
        parameters: Object.keys(modelTensors),
        savedAt: new Date().toISOString(),
      };
      await writeFileAtomic(join(staging, CHECKPOINT_FILES.trainer), `${JSON.stringify(file, null, 2)}\n`);
    },
    { last: [CHECKPOINT_FILES.trainer], what: 'write the training checkpoint' },
  );
}

/**
 * Loads a checkpoint into a freshly built model and optimizer (same architecture, same trainable set) and
 * returns the trainer state. Nothing changes unless every file reads and fits. Does not touch the global RNG:
 * the caller restores `rngState` (the Trainer does).
 */
export async function loadTrainingCheckpoint(dir: string, parts: CheckpointParts): Promise<TrainerState> {
  const checkpoint = await readTrainingCheckpoint(dir, parts);
  checkpoint.apply();
  return checkpoint.state;
}

/**
 * Reads every file of a checkpoint and checks it against `parts` without applying anything. Unreadable or
 * malformed files throw CheckpointDamagedError; a checkpoint that does not fit the model or optimizer throws a
 * plain Error saying what differs.
 */
export async function readTrainingCheckpoint(dir: string, parts: CheckpointParts): Promise<ReadCheckpoint> {
  const { model, optimizer } = parts;
  await recoverDirectory(dir);
  const state = await readTrainerState(dir);
  const modelPath = join(dir, CHECKPOINT_FILES.model);
  const optimizerPath = join(dir, CHECKPOINT_FILES.optimizer);
  const held: tf.Tensor[] = [];
  const dispose = () => held.splice(0).forEach((t) => t.dispose());
  try {
    const weights = await readDamageChecked(dir, modelPath, () => loadSafetensors(modelPath));
    held.push(...Object.values(weights.tensors));
    const saved = await readDamageChecked(dir, optimizerPath, () => loadSafetensors(optimizerPath));
    held.push(...Object.values(saved.tensors));

    const own = checkpointTensors(model);
    const expected = Object.keys(own);
    const missing = expected.filter((name) => !Object.hasOwn(weights.tensors, name));
    const unexpected = Object.keys(weights.tensors).filter((name) => !Object.hasOwn(own, name));
    const wrongShape = expected.filter(
      (name) => Object.hasOwn(weights.tensors, name) && weights.tensors[name]!.shape.join() !== own[name]!.shape.join(),
    );
    if (missing.length > 0 || unexpected.length > 0 || wrongShape.length > 0) {
      throw new Error(
        `loadTrainingCheckpoint: ${modelPath} does not match the model's trainable parameters` +
          `${missing.length ? `; missing: ${missing.slice(0, 10).join(', ')}` : ''}` +
          `${unexpected.length ? `; unexpected: ${unexpected.slice(0, 10).join(', ')}` : ''}` +
          `${wrongShape.length ? `; wrong shape: ${wrongShape.slice(0, 10).join(', ')}` : ''}. ` +
          'Build the same model and apply the same freeze/unfreeze calls as the run that saved it.',
      );
    }

    const meta = saved.metadata;
    let paramSteps: Record<string, number>;
    try {
      if (meta.format !== 'chimera-adamw' || meta.step === undefined || meta.paramSteps === undefined) throw new Error('metadata');
      paramSteps = JSON.parse(meta.paramSteps) as Record<string, number>;
      if (paramSteps === null || typeof paramSteps !== 'object') throw new Error('paramSteps');
    } catch {
      throw new CheckpointDamagedError(
        `${optimizerPath} is not a Chimera AdamW state (metadata ${JSON.stringify(meta).slice(0, 200)}); the checkpoint ${dir} is damaged`,
        dir,
      );
    }
    const optimizerState: AdamWState = { step: Number(meta.step), paramSteps, tensors: saved.tensors };
    const problems = optimizer.checkState(optimizerState);
    if (problems.length > 0) {
      throw new Error(
        `loadTrainingCheckpoint: ${optimizerPath} does not fit the optimizer (${problems.length} problem(s)):\n  ` +
          `${problems.slice(0, 10).join('\n  ')}\nBuild the optimizer over the same trainable parameters as the run that saved it.`,
      );
    }
    return {
      dir,
      state,
      apply() {
        try {
          model.loadStateDict(weights.tensors, { strict: false });
          optimizer.setState(optimizerState);
        } finally {
          dispose();
        }
      },
      dispose,
    };
  } catch (error) {
    dispose();
    throw error;
  }
}

async function readDamageChecked<T>(dir: string, path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new CheckpointDamagedError(`checkpoint ${dir} is damaged: ${(error as Error).message}`, dir, { cause: error });
  }
}

/** Reads and validates trainer.json of a checkpoint directory. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const path = join(dir, CHECKPOINT_FILES.trainer);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch {
    throw new CheckpointDamagedError(
      `readTrainerState: ${path} not found; ${dir} is not a complete training checkpoint (pass a step-* folder or its parent)`,
      dir,
    );
  }
  let file: Partial<TrainerStateFile>;
  try {
    file = JSON.parse(text) as Partial<TrainerStateFile>;
  } catch (error) {
    throw new CheckpointDamagedError(`readTrainerState: ${path} is not valid JSON (${(error as Error).message}); the checkpoint ${dir} is damaged`, dir);
  }
  if (file === null || typeof file !== 'object' || file.format !== STATE_FORMAT || file.version !== STATE_VERSION) {
    throw new CheckpointDamagedError(
      `readTrainerState: ${path} has format ${file?.format} v${file?.version}, expected ${STATE_FORMAT} v${STATE_VERSION}`,
      dir,
    );
  }
  for (const key of ['step', 'rngState', 'skippedSteps', 'consecutiveSkips'] as const) {
    if (!Number.isInteger(file[key])) throw new CheckpointDamagedError(`readTrainerState: ${path} has no valid '${key}'`, dir);
  }
  return {
    step: file.step!,
    rngState: file.rngState!,
    skippedSteps: file.skippedSteps!,
    consecutiveSkips: file.consecutiveSkips!,
    learningRate: file.learningRate ?? NaN,
  };
}

/** `step-00000120`: zero-padded so names sort by step. */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/**
 * Complete checkpoints under `root` (folders step-N holding trainer.json), oldest first. Finishes saves that
 * were interrupted after their commit point and removes what killed saves and prunes left behind. Each entry is
 * the checkpoint's step and its folder path.
 */
export async function listCheckpoints(root: string): Promise<{ step: number; dir: string }[]> {
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => null);
  if (entries === null) return [];
  const found: { step: number; dir: string }[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    if (entry.name.startsWith('.') && isAbandoned(entry.name)) {
      await fs.rm(join(root, entry.name), { recursive: true, force: true }).catch(() => undefined);
      continue;
    }
    const match = STEP_DIR.exec(entry.name);
    if (!match) continue;
    const dir = join(root, entry.name);
    await recoverDirectory(dir);
    if (await fs.stat(join(dir, CHECKPOINT_FILES.trainer)).then(() => true, () => false)) found.push({ step: Number(match[1]), dir });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** Leftovers in a checkpoint root: folders being deleted, and the temporaries of older versions' saves. */
function isAbandoned(name: string): boolean {
  if (name.includes(DELETING_MARKER)) return true;
  for (const marker of ['.tmp-', '.old-']) {
    const owner = ownerOf(name, marker);
    if (owner !== null && !processIsAlive(owner)) return true;
  }
  return false;
}

/** The newest complete checkpoint under `root`, or null. */
export async function latestCheckpoint(root: string): Promise<string | null> {
  return (await listCheckpoints(root)).at(-1)?.dir ?? null;
}

/**
 * Deletes all but the newest `keepLast` (>= 1) checkpoints under `root`. Each is first renamed aside, so one
 * whose deletion is interrupted is never mistaken for a checkpoint; the next listing removes it.
 */
export async function pruneCheckpoints(root: string, keepLast: number): Promise<void> {
  assertKeepLast(keepLast, 'pruneCheckpoints');
  const all = await listCheckpoints(root);
  for (const { dir } of all.slice(0, Math.max(0, all.length - keepLast))) {
    const aside = join(root, `.${basename(dir)}${DELETING_MARKER}${ownedSuffix()}`);
    await fs.rename(dir, aside);
    await fs.rm(aside, { recursive: true, force: true });
  }
}

/** keepLast must leave at least the newest checkpoint. */
export function assertKeepLast(keepLast: unknown, where: string): void {
  if (!(Number.isInteger(keepLast) && (keepLast as number) >= 1)) {
    throw new Error(
      `${where}: keepLast must be an integer >= 1 (the newest checkpoint is always kept), got ${String(keepLast)}; ` +
        'to keep no checkpoints, leave out the checkpoint option',
    );
  }
}
