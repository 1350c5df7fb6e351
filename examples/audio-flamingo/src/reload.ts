/**
 * The OpenFlamingo checkpoint layout: the frozen parts as saved after their pre-training (llm.safetensors,
 * audio.safetensors), the trained fusion parts in a trainable-only checkpoint. Reloading builds the LLM and the audio
 * encoder afresh (other random weights first), loads their saved weights, composes them, loads the fusion
 * checkpoint and answers the clips again.
 */
import { loadCheckpoint } from '@chimera/core';
import type { ComposedModel } from '@chimera/fusion';
import type { AudioModality } from '@chimera/audio-encoder';
import type { Clip } from './data';
import { evaluateComposed, type Scores } from './evaluate';
import { withFrozenFeatures } from './frozen-features';
import { buildAudio, buildLLM, composeEarly, composeFlamingo, type AudioFlamingoSize } from './model';

export async function reloadComposed(
  recipe: 'flamingo' | 'early',
  size: AudioFlamingoSize,
  paths: { llm: string; audio: string; fusion: string },
): Promise<ComposedModel> {
  const llm = buildLLM(size, 1000);
  await loadCheckpoint(llm, paths.llm);
  const audio = buildAudio(size, 1001);
  await loadCheckpoint(audio.module, paths.audio);
  const plugin = withFrozenFeatures(audio);
  const model = recipe === 'flamingo' ? composeFlamingo(llm, plugin, size, 1002) : composeEarly(llm, plugin, 1002);
  await model.load(paths.fusion);
  return model;
}

/** How many of `clips` the reloaded model answers exactly as `reference` did. */
export async function reloadedAnswers(
  recipe: 'flamingo' | 'early',
  size: AudioFlamingoSize,
  paths: { llm: string; audio: string; fusion: string },
  clips: readonly Clip[],
  reference: Scores,
): Promise<{ same: number; total: number }> {
  const model = await reloadComposed(recipe, size, paths);
  try {
    const again = await evaluateComposed(model, model.modalities.get('audio') as AudioModality, clips);
    const same = again.predictions.filter((p, i) => p.answer === reference.predictions[i]!.answer).length;
    return { same, total: clips.length };
  } finally {
    model.dispose();
  }
}
