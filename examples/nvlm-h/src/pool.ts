/**
 * The training pool: a fixed set of train-split images, encoded once by the frozen ViT (frozen-views.ts), with
 * every question of the trained types each image has. A step draws `batchSize` (image, question) pairs from it: an
 * image by a seeded hash of (step, row), a type uniformly among the trained types the image has a question of,
 * then one question of that type. So a step's data is a pure function of (seed, step), and an image is seen with
 * different questions over the run. The pool's images are chosen by the seed; held-out questions come from the
 * test split and never depend on it.
 */
import { SPLITS, deriveSeed, sizeKey, type Question, type QuestionType, type ShapesDataset } from '@chimera-examples/shapes-dataset';
import type { RgbImage } from '@chimera/vision-encoder';

export interface PoolImage {
  /** Index in the train split. */
  index: number;
  image: RgbImage;
  /** The image's questions of the trained types, by type (types without a question are absent). */
  questions: Partial<Record<QuestionType, Question[]>>;
  shapeCount: number;
  size: string;
}

/** A drawn training question: which pool image, and the question. */
export interface PoolDraw {
  image: number;
  question: Question;
}

/** `count` train-split images (seeded) that have at least one question of `types`. */
export function buildPool(dataset: ShapesDataset, seed: number, count: number, types: readonly QuestionType[]): PoolImage[] {
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`buildPool: count must be a positive integer, got ${count}`);
  if (types.length === 0) throw new Error('buildPool: expected at least one question type, got none');
  const pool: PoolImage[] = [];
  const stream = deriveSeed(seed, 11);
  for (let k = 0; pool.length < count; k++) {
    if (k > 20 * count) throw new Error(`buildPool: found only ${pool.length} of ${count} images with a ${types.join('/')} question; with these dataset options those questions are rare or impossible`);
    const index = deriveSeed(stream, k) % SPLITS.train.size;
    const questions: Partial<Record<QuestionType, Question[]>> = {};
    for (const q of dataset.allQuestions('train', index)) if (types.includes(q.type)) (questions[q.type] ??= []).push(q);
    if (Object.keys(questions).length === 0) continue;
    const sample = dataset.sample('train', index);
    pool.push({ index, image: sample.image, questions, shapeCount: sample.scene.shapes.length, size: sizeKey(sample.image) });
  }
  return pool;
}

/**
 * The draws of one step (see the file comment). `typeWeights` makes some types more frequent than others among
 * those an image has (default: all alike).
 */
export function drawBatch(
  pool: readonly Pick<PoolImage, 'questions'>[],
  seed: number,
  step: number,
  batchSize: number,
  typeWeights: Partial<Record<QuestionType, number>> = {},
): PoolDraw[] {
  return Array.from({ length: batchSize }, (_, row) => {
    const h = deriveSeed(deriveSeed(seed, 12), (step * batchSize + row) >>> 0);
    const image = h % pool.length;
    const entries = Object.entries(pool[image]!.questions) as [QuestionType, Question[]][];
    const weights = entries.map(([type]) => typeWeights[type] ?? 1);
    const h2 = deriveSeed(h, 1);
    let pick = ((h2 % 1_000_003) / 1_000_003) * weights.reduce((a, b) => a + b, 0);
    let k = 0;
    while (k < entries.length - 1 && pick >= weights[k]!) pick -= weights[k++]!;
    const ofType = entries[k]![1];
    return { image, question: ofType[deriveSeed(h2, 1) % ofType.length]! };
  });
}
