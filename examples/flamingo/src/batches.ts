// Episodes as model inputs: padded id tensors for the text-only LLM, interleaved samples for the composed model.
import * as tf from '@tensorflow/tfjs';
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import { episodeText, type Episode } from './episodes';
import { BOS, END_OF_CHUNK, PAD } from './vocabulary';

export interface TextBatch {
  /** int32 [B, T], right-padded. */
  inputIds: tf.Tensor2D;
  /** int32 [B, T]: the next token of each position (PAD where none). */
  targets: tf.Tensor2D;
  /** float32 [B, T]: 1 where the target is an answer or an end of chunk. */
  mask: tf.Tensor2D;
}

/** The text side of episodes (image markers, no pixels) as a right-padded LM batch. */
export function textBatch(episodes: readonly Episode[]): TextBatch {
  const rows = episodes.map(episodeText);
  const length = Math.max(...rows.map((r) => r.ids.length));
  const ids: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  for (const row of rows) {
    const pad = length - row.ids.length;
    ids.push([...row.ids, ...Array<number>(pad).fill(PAD)]);
    // Position t predicts token t + 1; it counts when that token is trained.
    targets.push(Array.from({ length }, (_, t) => row.ids[t + 1] ?? PAD));
    mask.push(Array.from({ length }, (_, t) => (row.trained[t + 1] ? 1 : 0)));
  }
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    targets: tf.tensor2d(targets, undefined, 'int32'),
    mask: tf.tensor2d(mask, undefined, 'float32'),
  };
}

/**
 * An episode as an interleaved sample: `<bos>`, then per chunk the image, its question (a prompt: no loss) and
 * the answer with `<|endofchunk|>` (trained). With `prompt`, the last chunk stops after its question, for
 * generation.
 */
export function episodeSample(episode: Episode, prepare: (image: RgbImage) => PreparedImage, prompt = false): ComposedSample {
  const parts: SamplePart[] = [{ text: [BOS], trained: false }];
  episode.chunks.forEach((chunk, k) => {
    parts.push({ modality: 'image', item: prepare(chunk.image) });
    parts.push({ text: chunk.questionIds, trained: false });
    const last = k === episode.chunks.length - 1;
    if (!(prompt && last)) parts.push({ text: [chunk.answerId, END_OF_CHUNK] });
  });
  return parts;
}
