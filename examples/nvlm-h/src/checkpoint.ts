/**
 * The trainable-only checkpoint: after stage 2 only the trained parameters of the hybrid (projector, cross-attention
 * blocks, LLM) are saved (arm.ts). Reloading builds the arm again from the run's seed, loads the pretrained ViT (the frozen
 * part, saved after the vision phase as NVLM would download InternViT), loads the checkpoint on top, and answers
 * the held-out questions again: every answer must be the same.
 */
import { statSync } from 'node:fs';
import { loadCheckpoint } from '@chimera/core';
import { answerExamples } from '@chimera-examples/shapes-vqa';
import { answering, type ArmOutput } from './arm';
import type { NvlmResult } from './experiment';
import { buildArm, type Arm, type ArmName, type NvlmSize } from './model';

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

/** A freshly built arm from `seed` with the pretrained ViT from `towerPath` and the checkpoint at `path` loaded on top. */
export async function loadTrainable(name: ArmName, size: NvlmSize, seed: number, path: string, towerPath: string): Promise<Arm> {
  const arm = buildArm(name, size, seed);
  try {
    await loadCheckpoint(arm.image.encoder, towerPath);
    await arm.model.load(path);
    return arm;
  } catch (error) {
    arm.model.dispose();
    throw error;
  }
}

/**
 * Reloads the checkpoint the arm saved after training (runNvlm's checkpointPath) onto fresh frozen parts and compares
 * the held-out answers with the ones the arm gave.
 */
export async function checkTrainableCheckpoint(result: NvlmResult, arm: ArmOutput, size: NvlmSize, seed: number): Promise<CheckpointCheck> {
  const path = result.checkpointPath;
  if (!result.visionTowerPath || !path || !arm.checkpoint) {
    throw new Error('checkTrainableCheckpoint: the run saved no pretrained ViT or no checkpoint of this arm; pass visionTowerPath and checkpointPath to runNvlm');
  }
  const reloaded = await loadTrainable(arm.name, size, seed, path, result.visionTowerPath);
  try {
    const { answers } = await answerExamples(answering(reloaded.model), result.heldOut, result.heldOutFeatures);
    return {
      path,
      bytes: statSync(path).size,
      ...arm.checkpoint,
      compared: answers.length,
      same: answers.filter((a, i) => a === arm.final.answers[i]).length,
    };
  } finally {
    reloaded.model.dispose();
  }
}
