/**
 * The trainable-only checkpoint (the OpenFlamingo pattern): after stage 2 only the trained parameters are saved.
 * Reloading builds the model again from the run's seed, loads the pretrained ViT (the frozen part, saved after
 * the vision phase as LLaVA would download CLIP), loads the checkpoint on top, and answers the held-out
 * questions again: the answers must be the same.
 */
import { statSync } from 'node:fs';
import { loadCheckpoint } from '@chimera/core';
import type { ComposedModel } from '@chimera/fusion';
import { answerExamples } from '@chimera-examples/shapes-vqa';
import type { LlavaResult } from './experiment';
import { buildLlava, type LlavaSize } from './model';

export interface CheckpointCheck {
  path: string;
  bytes: number;
  /** Parameter tensors saved / in the model. */
  savedTensors: number;
  totalTensors: number;
  /** Held-out answers compared and how many were the same. */
  compared: number;
  same: number;
}

/**
 * A freshly built model from `seed` with the pretrained ViT from `visionTowerPath` and the trainable-only
 * checkpoint at `path` loaded on top (which also restores the trainable set it was saved with).
 */
export async function loadTrainable(size: LlavaSize, seed: number, path: string, visionTowerPath: string): Promise<ComposedModel> {
  const { model, image } = buildLlava(size, seed);
  try {
    await loadCheckpoint(image.encoder!, visionTowerPath);
    await model.load(path);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Saves the trainable parameters, reloads onto fresh frozen parts and compares the held-out answers. */
export async function checkTrainableCheckpoint(result: LlavaResult, size: LlavaSize, seed: number, path: string): Promise<CheckpointCheck> {
  if (!result.visionTowerPath) {
    throw new Error('checkTrainableCheckpoint: the run saved no pretrained ViT to rebuild the frozen parts from; pass visionTowerPath to runLlava');
  }
  const saved = await result.model.save(path, { trainableOnly: true });
  const reloaded = await loadTrainable(size, seed, path, result.visionTowerPath);
  try {
    const { answers } = await answerExamples(reloaded, result.heldOut, result.heldOutImages);
    const same = answers.filter((a, i) => a === result.final.answers[i]).length;
    return {
      path,
      bytes: statSync(path).size,
      savedTensors: saved.length,
      totalTensors: result.model.namedParameters().length,
      compared: answers.length,
      same,
    };
  } finally {
    reloaded.dispose();
  }
}
