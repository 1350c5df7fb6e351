/**
 * Training checkpoints: a directory holding the model's trainable parameters and buffers
 * (model.safetensors), the optimizer moments (optimizer.safetensors) and the trainer's position
 * (trainer.json: step, RNG state, skip counts). The directory is written under a temporary name and renamed
 * into place, so a directory with the final name is always complete; a crash leaves at most a hidden
 * temporary folder.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module';
import { loadSafetensors, saveSafetensors, writeFileAtomic } from '../weights/safetensors';
import type { AdamW } from './adamw';

export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  trainer: 'trainer.json',
} as const;

const STATE_FORMAT = 'chimera-trainer-state';
const STATE_VERSION = 1;

/** Where a run stands; enough, with the model and optimizer files, to continue it exactly. */
export interface TrainerState {
  /** Steps completed: the step a resumed run executes next. */
  step: number;
  /** The global RNG state (globalRandom().getState()) when the checkpoint was taken. */
  rngState: number;
  skippedSteps: number;
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

export interface CheckpointParts {
  model: Module;
  optimizer: AdamW;
}

/** The tensors a checkpoint keeps of a model: trainable parameters and buffers (frozen weights load separately). */
export function checkpointTensors(model: Module): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, v] of model.namedParameters()) if (v.trainable) out[name] = v;
  for (const [name, b] of model.namedBuffers()) out[name] = b;
  return out;
}

/**
 * Writes a complete checkpoint to `dir`, replacing one already there. Files go to a hidden sibling folder
 * that is renamed to `dir` only once everything is written (trainer.json last).
 */
export async function saveTrainingCheckpoint(dir: string, parts: CheckpointParts & { state: TrainerState }): Promise<void> {
  const { model, optimizer, state } = parts;
  const parent = dirname(dir);
  const tag = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const temp = join(parent, `.${basename(dir)}.tmp-${tag}`);
  await mkdir(temp, { recursive: true });
  try {
    const modelTensors = checkpointTensors(model);
    await saveSafetensors(join(temp, CHECKPOINT_FILES.model), modelTensors, { format: 'chimera-checkpoint', step: String(state.step) });
    const optimizerState = optimizer.getState();
    await saveSafetensors(join(temp, CHECKPOINT_FILES.optimizer), optimizerState.tensors, {
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
    await writeFileAtomic(join(temp, CHECKPOINT_FILES.trainer), `${JSON.stringify(file, null, 2)}\n`);
    if (existsSync(dir)) {
      const old = join(parent, `.${basename(dir)}.old-${tag}`);
      await rename(dir, old);
      await rename(temp, dir);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(temp, dir);
    }
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Loads a checkpoint into a freshly built model and optimizer (same architecture, same trainable set) and
 * returns the trainer state. Does not touch the global RNG: the caller restores `rngState` (the Trainer does).
 */
export async function loadTrainingCheckpoint(dir: string, parts: CheckpointParts): Promise<TrainerState> {
  const { model, optimizer } = parts;
  const state = await readTrainerState(dir);

  const loaded = await loadSafetensors(join(dir, CHECKPOINT_FILES.model));
  try {
    const expected = Object.keys(checkpointTensors(model));
    const missing = expected.filter((name) => !(name in loaded.tensors));
    const unexpected = Object.keys(loaded.tensors).filter((name) => !expected.includes(name));
    if (missing.length > 0 || unexpected.length > 0) {
      throw new Error(
        `loadTrainingCheckpoint: ${join(dir, CHECKPOINT_FILES.model)} does not match the model's trainable parameters` +
          `${missing.length ? `; missing: ${missing.slice(0, 10).join(', ')}` : ''}` +
          `${unexpected.length ? `; unexpected: ${unexpected.slice(0, 10).join(', ')}` : ''}. ` +
          'Build the same model and apply the same freeze/unfreeze calls as the run that saved it.',
      );
    }
    model.loadStateDict(loaded.tensors, { strict: false });
  } finally {
    Object.values(loaded.tensors).forEach((t) => t.dispose());
  }

  const saved = await loadSafetensors(join(dir, CHECKPOINT_FILES.optimizer));
  try {
    const meta = saved.metadata;
    if (meta.format !== 'chimera-adamw' || meta.step === undefined || meta.paramSteps === undefined) {
      throw new Error(`loadTrainingCheckpoint: ${join(dir, CHECKPOINT_FILES.optimizer)} is not a Chimera AdamW state (metadata ${JSON.stringify(meta)})`);
    }
    optimizer.setState({
      step: Number(meta.step),
      paramSteps: JSON.parse(meta.paramSteps) as Record<string, number>,
      tensors: saved.tensors,
    });
  } finally {
    Object.values(saved.tensors).forEach((t) => t.dispose());
  }
  return state;
}

/** Reads and validates trainer.json of a checkpoint directory. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const path = join(dir, CHECKPOINT_FILES.trainer);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`readTrainerState: ${path} not found; ${dir} is not a complete training checkpoint (pass a step-* folder or its parent)`);
  }
  const file = JSON.parse(text) as Partial<TrainerStateFile>;
  if (file.format !== STATE_FORMAT || file.version !== STATE_VERSION) {
    throw new Error(`readTrainerState: ${path} has format ${file.format} v${file.version}, expected ${STATE_FORMAT} v${STATE_VERSION}`);
  }
  for (const key of ['step', 'rngState', 'skippedSteps', 'consecutiveSkips'] as const) {
    if (!Number.isInteger(file[key])) throw new Error(`readTrainerState: ${path} has no valid '${key}'`);
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

/** Complete checkpoints under `root` (folders step-N holding trainer.json), oldest first. */
export function listCheckpoints(root: string): { step: number; dir: string }[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^step-\d+$/.test(e.name) && existsSync(join(root, e.name, CHECKPOINT_FILES.trainer)))
    .map((e) => ({ step: Number(e.name.slice(5)), dir: join(root, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under `root`, or null. */
export function latestCheckpoint(root: string): string | null {
  return listCheckpoints(root).at(-1)?.dir ?? null;
}

/** Deletes all but the newest `keepLast` checkpoints under `root`. */
export async function pruneCheckpoints(root: string, keepLast: number): Promise<void> {
  const all = listCheckpoints(root);
  for (const { dir } of all.slice(0, Math.max(0, all.length - keepLast))) await rm(dir, { recursive: true, force: true });
}
