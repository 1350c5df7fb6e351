/**
 * The training stages, all through core's Trainer (AdamW, 5% warmup then cosine to a tenth, global-norm clip 1):
 * 1. the LLM on the text side of the episodes (loss on answers and ends of chunks);
 * 2. the audio encoder (Whisper-style tower + window encoder) on the sounds: throwaway linear heads name each
 *    clip's attribute (its question type's answer) from the mean of the plugin's output tokens, the features the
 *    Perceiver and the early-fusion projector then read (as examples/flamingo pre-trains its ViT);
 * 3. the composed model with only what `model.trainOnly(...)` left trainable learning.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, type StepMetrics } from '@chimera/core';
import { runStage, type StageRunOptions } from '@chimera-examples/kit';
import type { ComposedModel, ComposedSample } from '@chimera/fusion';
import { causalLMLoss, type CausalLM } from '@chimera/llm';
import type { AudioModality } from '@chimera/audio-encoder';
import { ANSWERS_BY_TYPE, QUESTION_TYPES } from '@chimera-examples/sounds-dataset';
import { answerClass, clipSample, preparedAudio, textBatch, trainingIndices, type Clip, type ClipBank, type TextBatch } from './data';

/** A stage's settings: the kit's (steps, peak rate, seed, metrics, progress) plus the batch and the clip pool. */
export interface StageOptions extends StageRunOptions {
  batchSize: number;
  /** Training clips drawn from (the first `pool` of the train split; their features are computed once). */
  pool: number;
}

const clipsAt = (bank: ClipBank, options: StageOptions, step: number): Clip[] =>
  trainingIndices(options.seed, step, options.batchSize, options.pool).map((i) => bank.clip('train', i));

/** Stage 1: the LLM learns the text side: which answers each question can have, and where chunks end. */
export function pretrainText(llm: CausalLM, bank: ClipBank, options: StageOptions): Promise<StepMetrics[]> {
  return runStage(llm, options, {
    label: 'text',
    weightDecay: 0,
    batchAt: (step) => textBatch(clipsAt(bank, options, step)),
    loss: (m, batch: TextBatch) => causalLMLoss(m.forward({ inputIds: batch.inputIds }).logits, batch.targets, batch.mask),
  });
}

/** Offsets of each question type's answers in the heads' joint output. */
const OFFSETS = QUESTION_TYPES.map((_, t) => QUESTION_TYPES.slice(0, t).reduce((n, type) => n + ANSWERS_BY_TYPE[type].length, 0));
const CLASSES = QUESTION_TYPES.reduce((n, type) => n + ANSWERS_BY_TYPE[type].length, 0);

/**
 * The audio plugin's trainable parts with one linear head over the mean output token of the clip and of each of its
 * halves; only the plugin is kept.
 */
export class SoundLabeler extends Module {
  readonly audio: AudioModality;
  readonly head: Linear;

  constructor(audio: AudioModality) {
    super();
    this.audio = audio;
    this.addModule('audio', audio.module);
    this.head = this.addModule('head', new Linear(3 * audio.featureDim, CLASSES));
  }

  /** Logits [B, CLASSES], each row masked to its clip's question type's answers. */
  forward(clips: readonly Clip[]): tf.Tensor2D {
    return tf.tidy(() => {
      const { features } = this.audio.continuousIn!.encode(clips.map((c) => preparedAudio(c, this.audio)));
      const perClip = Array.isArray(features) ? features : tf.unstack(features); // [N_i, D] per clip
      // The mean over the clip and over each half: direction and order questions need when, not only what.
      const pooled = tf.stack(
        perClip.map((f) => {
          const half = Math.max(1, Math.floor(f.shape[0]! / 2));
          const [first, second] = tf.split(f, [half, f.shape[0]! - half], 0);
          return tf.concat([tf.mean(f, 0), tf.mean(first!, 0), tf.mean(second!, 0)]);
        }),
      ) as tf.Tensor2D; // [B, 3D]
      const allowed = clips.map((c) => {
        const t = QUESTION_TYPES.indexOf(c.question.type);
        return Array.from({ length: CLASSES }, (_, k) => (k >= OFFSETS[t]! && k < OFFSETS[t]! + ANSWERS_BY_TYPE[c.question.type].length ? 0 : -1e9));
      });
      return tf.add(this.head.forward(pooled), tf.tensor2d(allowed)) as tf.Tensor2D;
    });
  }
}

const labelsOf = (clips: readonly Clip[]) => clips.map((c) => OFFSETS[QUESTION_TYPES.indexOf(c.question.type)]! + answerClass(c));

/** Stage 2: the encoder names each clip's attribute; returns the held-out (validation) accuracy per type. */
export async function pretrainAudio(
  audio: AudioModality,
  bank: ClipBank,
  options: StageOptions,
  validation: readonly Clip[],
): Promise<{ history: StepMetrics[]; accuracy: Record<string, number> }> {
  const labeler = new SoundLabeler(audio);
  const history = await runStage<SoundLabeler, Clip[]>(labeler, options, {
    label: 'audio',
    weightDecay: 0.05,
    batchAt: (step) => clipsAt(bank, options, step),
    loss: (m, clips) =>
      tf.tidy(() => {
        const logits = m.forward(clips);
        const labels = tf.oneHot(tf.tensor1d(labelsOf(clips), 'int32'), CLASSES);
        return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), -1))) as tf.Scalar;
      }),
  });
  const predicted: number[] = [];
  for (let start = 0; start < validation.length; start += 32) {
    const batch = validation.slice(start, start + 32);
    predicted.push(...tf.tidy(() => Array.from(tf.argMax(labeler.forward(batch), -1).dataSync())));
  }
  const truth = labelsOf(validation);
  const accuracy: Record<string, number> = {};
  for (const type of QUESTION_TYPES) {
    const rows = validation.map((c, i) => i).filter((i) => validation[i]!.question.type === type);
    if (rows.length) accuracy[type] = rows.filter((i) => predicted[i] === truth[i]).length / rows.length;
  }
  labeler.head.dispose();
  return { history, accuracy };
}

/** Stage 3: the composed model on episodes; only what `model.trainOnly(...)` left trainable learns. */
export function trainFusion(model: ComposedModel, audio: AudioModality, bank: ClipBank, options: StageOptions, label: string): Promise<StepMetrics[]> {
  return runStage(model, options, {
    label,
    weightDecay: 0.01,
    batchAt: (step): ComposedSample[] => clipsAt(bank, options, step).map((clip) => clipSample(clip, audio)),
    loss: (m, batch) => m.loss(batch),
  });
}
