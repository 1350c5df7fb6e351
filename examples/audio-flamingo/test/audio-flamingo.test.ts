// The tiny Audio Flamingo: the episode format, identity at init
// (zero gates), the frozen-feature memo, and a reduced run of both recipes that must learn from the audio (a bar
// the text-only LLM misses), reload from its trainable-only checkpoint with identical answers, and leak nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@chimera/core';
import { unknownFlagProblems } from '@chimera-examples/kit';
import { SoundsDataset, type QuestionType } from '@chimera-examples/sounds-dataset';
import { ClipBank, clipText, promptText, textBatch } from '../src/data';
import { evaluateComposed, evaluateTextOnly } from '../src/evaluate';
import { runExperiment, type ExperimentResult } from '../src/experiment';
import { withFrozenFeatures } from '../src/frozen-features';
import { DEFAULT_SIZE, buildAudio, buildLLM, composeFlamingo, type AudioFlamingoSize } from '../src/model';
import { reloadedAnswers } from '../src/reload';
import { AUDIO, BOS, END_OF_CHUNK, decodeIds } from '../src/vocabulary';

const SMALL: Partial<AudioFlamingoSize> = {
  encoderHidden: 32,
  encoderLayers: 1,
  encoderHeads: 2,
  encoderFfn: 64,
  llmHidden: 32,
  llmLayers: 2,
  llmHeads: 2,
  llmFfn: 64,
  latents: 4,
  perceiverHeads: 2,
  xattnEvery: 1,
};
const size: AudioFlamingoSize = { ...DEFAULT_SIZE, ...SMALL };

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('episodes', () => {
  it('are <bos> <audio> question answer <|endofchunk|>, with the loss on the answer and the end only', () => {
    const bank = new ClipBank(new SoundsDataset({ types: ['beeps'] }), 80);
    const clip = bank.clip('test', 0);
    const { ids, trained } = clipText(clip);
    expect(ids.slice(0, 2)).toEqual([BOS, AUDIO]);
    expect(ids.at(-1)).toBe(END_OF_CHUNK);
    expect(decodeIds(ids.slice(2, -2))).toBe('how many beeps are there?');
    expect(decodeIds([ids.at(-2)!])).toBe(clip.question.answer);
    expect(trained.map((t, i) => (t ? i : -1)).filter((i) => i >= 0)).toEqual([ids.length - 2, ids.length - 1]);
    expect(promptText(clip)).toEqual(ids.slice(0, -2));
    expect(clip.frames).toBe(Math.round(clip.scene.duration * 100));
    // The same clip from a fresh bank: features are a pure function of (split, index).
    const again = new ClipBank(new SoundsDataset({ types: ['beeps'] }), 80).clip('test', 0);
    expect(Buffer.from(again.features.buffer).equals(Buffer.from(clip.features.buffer))).toBe(true);
    const batch = textBatch([clip, again]);
    expect(batch.inputIds.shape).toEqual([2, ids.length]);
    tf.dispose([batch.inputIds, batch.targets, batch.mask]);
  });
});

describe('composed model', () => {
  it('equals the LLM at init (zero gates), remembers frozen features exactly, and leaks nothing', async () => {
    const bank = new ClipBank(new SoundsDataset(), 80);
    const clips = bank.clips('test', [0, 1, 2, 3, 4, 5]);
    const start = tf.memory().numTensors;
    const llm = buildLLM(size, 3);
    const text = await evaluateTextOnly(llm, clips); // before compose inserts the cross-attention blocks
    const audio = buildAudio(size, 4);
    const frozen = withFrozenFeatures(audio);
    const model = composeFlamingo(llm, frozen, size, 5);
    model.trainOnly('fusion');
    const composed = await evaluateComposed(model, frozen, clips);
    expect(composed.predictions.map((p) => p.answer)).toEqual(text.predictions.map((p) => p.answer));
    // Remembered features are the plugin's own, bit for bit, on a first and a second call.
    const items = clips.map((c) => audio.prepare({ features: c.features, frames: c.frames, melBins: c.melBins }));
    const plain = audio.continuousIn!.encode(items).features as tf.Tensor[];
    for (let round = 0; round < 2; round++) {
      const memo = frozen.continuousIn!.encode(items).features as tf.Tensor[];
      memo.forEach((t, i) => expect(Array.from(t.dataSync())).toEqual(Array.from(plain[i]!.dataSync())));
      tf.dispose(memo);
    }
    tf.dispose(plain);
    model.trainOnly('all');
    expect(() => frozen.continuousIn!.encode(items)).toThrow(/trainable, so remembered features would be stale/);
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});

describe('reduced run', () => {
  const TYPES: QuestionType[] = ['pitch', 'waveform'];
  let result: ExperimentResult;
  let dir: string;
  let tensorsAtStart: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'af-run-'));
    tensorsAtStart = tf.memory().numTensors;
    result = await runExperiment({
      seed: 2,
      size: SMALL,
      data: { types: TYPES },
      trainPool: 240,
      testClips: 90,
      validationClips: 45,
      pretrain: { steps: 30, batchSize: 32, learningRate: 3e-3 },
      audioPretrain: { steps: 60, batchSize: 16, learningRate: 3e-3 },
      fusion: { steps: 80, batchSize: 16, learningRate: 3e-3 },
      early: { steps: 80, batchSize: 16, learningRate: 2e-3, train: 'projector+llm' },
      checkpointDir: dir,
      log: (line) => {
        if (/baseline|held-out|Audio Flamingo:|early fusion:/.test(line)) console.log(line);
      },
    });
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('learns from the audio: both recipes beat the text-only LLM by a margin it cannot close', () => {
    // Text alone can only guess among each type's answers (33% / 25%); the bar needs the clips.
    expect(result.textOnly.accuracy).toBeLessThan(0.45);
    expect(result.trained.accuracy).toBeGreaterThanOrEqual(0.6);
    expect(result.trained.accuracy - result.textOnly.accuracy).toBeGreaterThanOrEqual(0.25);
    expect(result.early!.scores.accuracy).toBeGreaterThanOrEqual(0.6);
    // Only the fusion parts trained.
    const trainable = result.summary.groups.filter((g) => g.trainable !== 'no').map((g) => g.name);
    expect(trainable.sort()).toEqual(['audio.resampler', 'audio.xattn']);
  });

  it('reloads each trainable-only checkpoint onto fresh frozen parts with identical answers, and leaks nothing', async () => {
    const flamingoPath = join(dir, 'fusion.safetensors');
    await result.model.save(flamingoPath, { trainableOnly: true });
    const reload = await reloadedAnswers('flamingo', result.size, { ...result.paths, fusion: flamingoPath }, result.testSet, result.trained);
    expect(reload).toEqual({ same: result.testSet.length, total: result.testSet.length });
    const earlyPath = join(dir, 'early.safetensors');
    await result.early!.model.save(earlyPath, { trainableOnly: true });
    const earlyReload = await reloadedAnswers('early', result.size, { ...result.paths, fusion: earlyPath }, result.testSet, result.early!.scores);
    expect(earlyReload.same).toBe(result.testSet.length); // early fusion trained the LLM too: it is in its checkpoint
    result.model.dispose();
    result.early!.model.dispose();
    // Every tensor made across feature extraction, pre-training, fusion training and generation is gone with the models.
    expect(tf.memory().numTensors).toBe(tensorsAtStart);
  });
});

describe('the training script', () => {
  it('prints the problem and the usage on stderr and exits 2 for an unknown flag, before any training', async () => {
    expect(await unknownFlagProblems(new URL('../dist/train.js', import.meta.url))).toEqual([]);
  });
});
