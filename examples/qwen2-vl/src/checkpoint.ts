/**
 * The trainable-only checkpoint: after stage 2 only the trained parameters (merger and LLM) are saved. Reloading
 * builds the model again from the run's seed, loads the pretrained ViT (the frozen part, saved after the vision
 * stage as one would download Qwen2-VL's tower), loads the checkpoint on top and answers the held-out questions of
 * both sets again: the answers must be the same.
 */
import { statSync } from 'node:fs';
import { loadCheckpoint } from '@chimera/core';
import type { ComposedModel } from '@chimera/fusion';
import { answerExamples } from '@chimera-examples/shapes-vqa';
import type { Qwen2VLResult } from './experiment';
import { buildQwen2VL, type Qwen2VLSize } from './model';

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

/** A model built from `seed` with the ViT from `visionTowerPath` and the trainable-only checkpoint at `path` on top. */
export async function loadTrainable(size: Qwen2VLSize, seed: number, path: string, visionTowerPath: string): Promise<ComposedModel> {
  const { model, tower } = buildQwen2VL(size, seed);
  try {
    await loadCheckpoint(tower, visionTowerPath);
    await model.load(path);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Saves the trainable parameters, reloads them onto freshly built frozen parts and compares the held-out answers. */
export async function checkTrainableCheckpoint(result: Qwen2VLResult, size: Qwen2VLSize, seed: number, path: string): Promise<CheckpointCheck> {
  if (!result.visionTowerPath) {
    throw new Error('checkTrainableCheckpoint: the run saved no pretrained ViT to rebuild the frozen parts from; pass visionTowerPath to runQwen2VL');
  }
  const saved = await result.model.save(path, { trainableOnly: true });
  const reloaded = await loadTrainable(size, seed, path, result.visionTowerPath);
  try {
    let compared = 0;
    let same = 0;
    for (const set of ['seen', 'unseen'] as const) {
      const { answers } = await answerExamples(reloaded, result.heldOut[set], result.heldOutImages[set]);
      compared += answers.length;
      same += answers.filter((a, i) => a === result.final[set].answers[i]).length;
    }
    return { path, bytes: statSync(path).size, savedTensors: saved.length, totalTensors: result.model.namedParameters().length, compared, same };
  } finally {
    reloaded.dispose();
  }
}
