/**
 * The example's data: sounds-dataset clips turned into log-mel features once each (a cache keyed by split and
 * index), and each clip's question as a one-chunk episode in the Flamingo format,
 *
 *   <bos> <audio> how many beeps are there ? 4 <|endofchunk|>
 *
 * as an interleaved sample for the composed model (the clip at `<audio>`), and as its text side (the same ids, no
 * audio) for the LLM's pre-training and the text-only baseline. Training draws from a fixed pool of training clips
 * so the log-mel frontend runs once per clip.
 */
import * as tf from '@tensorflow/tfjs';
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import { whisperLogMelFrames, type AudioModality, type PreparedAudio } from '@chimera/audio-encoder';
import { ANSWERS_BY_TYPE, QUESTION_TYPES, SoundsDataset, type ClipScene, type Question, type QuestionType } from '@chimera-examples/sounds-dataset';
import { deriveSeed, type SplitName } from '@chimera-examples/shapes-dataset';

import { AUDIO, BOS, END_OF_CHUNK, PAD, encodeWords } from './vocabulary';

export interface Clip {
  split: SplitName;
  index: number;
  scene: ClipScene;
  question: Question;
  questionIds: number[];
  answerId: number;
  /** [frames, melBins] log-mel features. */
  features: Float32Array;
  frames: number;
  melBins: number;
}

export class ClipBank {
  readonly dataset: SoundsDataset;
  readonly melBins: number;
  private readonly cache = new Map<string, Clip>();

  constructor(dataset: SoundsDataset, melBins: number) {
    this.dataset = dataset;
    this.melBins = melBins;
  }

  clip(split: SplitName, index: number): Clip {
    return this.clips(split, [index])[0]!;
  }

  /** Clips of a split, the missing ones made and turned into log-mel features (once each). */
  clips(split: SplitName, indices: readonly number[]): Clip[] {
    const missing = [...new Set(indices.filter((index) => !this.cache.has(`${split}:${index}`)))];
    for (let start = 0; start < missing.length; start += 64) {
      const samples = missing.slice(start, start + 64).map((index) => this.dataset.sample(split, index));
      samples.forEach((sample) => {
        const [answerId, ...rest] = encodeWords(sample.question.answer);
        if (answerId === undefined || rest.length > 0) throw new Error(`ClipBank: answer '${sample.question.answer}' is not one word`);
        const { features, frames } = whisperLogMelFrames(sample.audio, sample.sampleRate, this.melBins);
        this.cache.set(`${split}:${sample.index}`, {
          split,
          index: sample.index,
          scene: sample.scene,
          question: sample.question,
          questionIds: encodeWords(sample.question.text),
          answerId,
          features,
          frames,
          melBins: this.melBins,
        });
      });
    }
    return indices.map((index) => this.cache.get(`${split}:${index}`)!);
  }

  get size(): number {
    return this.cache.size;
  }
}

/** Training clip indices of a step, drawn from the first `pool` training clips: a pure function of (seed, step). */
export function trainingIndices(seed: number, step: number, batchSize: number, pool: number): number[] {
  return Array.from({ length: batchSize }, (_, i) => deriveSeed(seed, (step * batchSize + i) >>> 0) % pool);
}

/** The clip's episode as an interleaved sample; with `prompt` it stops after the question (for generation). */
export function clipSample(clip: Clip, audio: AudioModality, prompt = false): ComposedSample {
  const parts: SamplePart[] = [
    { text: [BOS], trained: false },
    { modality: 'audio', item: prepared(clip, audio) },
    { text: clip.questionIds, trained: false },
  ];
  if (!prompt) parts.push({ text: [clip.answerId, END_OF_CHUNK] });
  return parts;
}

const preparedCache = new WeakMap<Clip, PreparedAudio>();
function prepared(clip: Clip, audio: AudioModality): PreparedAudio {
  let item = preparedCache.get(clip);
  if (!item) {
    item = audio.prepare({ features: clip.features, frames: clip.frames, melBins: clip.melBins });
    preparedCache.set(clip, item);
  }
  return item;
}

export function preparedAudio(clip: Clip, audio: AudioModality): PreparedAudio {
  return prepared(clip, audio);
}

/** The text side: `<bos> <audio> question answer <|endofchunk|>`; the answer and the end are trained. */
export function clipText(clip: Clip): { ids: number[]; trained: boolean[] } {
  const ids = [BOS, AUDIO, ...clip.questionIds, clip.answerId, END_OF_CHUNK];
  return { ids, trained: ids.map((_, i) => i >= ids.length - 2) };
}

/** The text-side prompt: everything before the answer. */
export function promptText(clip: Clip): number[] {
  return clipText(clip).ids.slice(0, -2);
}

export interface TextBatch {
  inputIds: tf.Tensor2D;
  targets: tf.Tensor2D;
  mask: tf.Tensor2D;
}

/** The text side of clips as a right-padded LM batch (loss on the answers and ends of chunks). */
export function textBatch(clips: readonly Clip[]): TextBatch {
  const rows = clips.map(clipText);
  const length = Math.max(...rows.map((r) => r.ids.length));
  return {
    inputIds: tf.tensor2d(rows.map((r) => [...r.ids, ...Array<number>(length - r.ids.length).fill(PAD)]), undefined, 'int32'),
    targets: tf.tensor2d(rows.map((r) => Array.from({ length }, (_, t) => r.ids[t + 1] ?? PAD)), undefined, 'int32'),
    mask: tf.tensor2d(rows.map((r) => Array.from({ length }, (_, t) => (r.trained[t + 1] ? 1 : 0))), undefined, 'float32'),
  };
}

/** Index of a clip's answer among its type's answers (the class of the encoder's pre-training head). */
export function answerClass(clip: Clip): number {
  return ANSWERS_BY_TYPE[clip.question.type].indexOf(clip.question.answer);
}

export const typeIndex = (type: QuestionType): number => QUESTION_TYPES.indexOf(type);
