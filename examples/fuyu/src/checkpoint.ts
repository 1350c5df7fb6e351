/**
 * The trainable checkpoint: Fuyu has no frozen part, so after the image phase every parameter is trainable and
 * the trainable-only save is the whole model (patch Linear, row break, decoder; without the patches when the run
 * froze them, which the seed rebuilds). The check rebuilds the model from the run's seed, loads the file and
 * answers the held-out questions again: the answers must be the same.
 */
import { statSync } from 'node:fs';
import type { ComposedModel } from '@chimera/fusion';
import { answerExamples } from '@chimera-examples/shapes-vqa';
import type { FuyuResult } from './experiment';
import { buildFuyu, type FuyuSize } from './model';

export interface CheckpointCheck {
  path: string;
  bytes: number;
  /** Parameter tensors saved / in the model. */
  savedTensors: number;
  totalTensors: number;
  /** Held-out answers compared (seen and unseen sizes) and how many were the same. */
  compared: number;
  same: number;
}

/** A freshly built model from `seed` with the checkpoint at `path` loaded (which also restores the trainable set). */
export async function loadTrained(size: FuyuSize, seed: number, path: string): Promise<ComposedModel> {
  const { model } = buildFuyu(size, seed);
  try {
    await model.load(path);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Saves the trainable parameters, reloads them onto a fresh model and compares the held-out answers. */
export async function checkTrainableCheckpoint(result: FuyuResult, size: FuyuSize, seed: number, path: string): Promise<CheckpointCheck> {
  const saved = await result.model.save(path, { trainableOnly: true });
  const reloaded = await loadTrained(size, seed, path);
  try {
    const examples = [...result.heldOut.seen, ...result.heldOut.unseen];
    const images = [...result.heldOutImages.seen, ...result.heldOutImages.unseen];
    const before = [...result.final.seen.answers, ...result.final.unseen.answers];
    const { answers } = await answerExamples(reloaded, examples, images);
    return {
      path,
      bytes: statSync(path).size,
      savedTensors: saved.length,
      totalTensors: result.model.namedParameters().length,
      compared: answers.length,
      same: answers.filter((a, i) => a === before[i]).length,
    };
  } finally {
    reloaded.dispose();
  }
}
