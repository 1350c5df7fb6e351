/**
 * Question/answer examples drawn from a ShapesDataset: a fixed held-out set per question type (a function of the
 * dataset alone, never of the training seed, so every run and every example scores the same questions) and the
 * training examples of a step (a pure function of seed and step).
 */
import type { RgbImage } from '@chimera/vision-encoder';
import { SPLITS, deriveSeed, sizeKey, type QuestionType, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';

export interface Example {
  split: SplitName;
  index: number;
  type: QuestionType;
  question: string;
  answer: string;
  image: RgbImage;
  /** Shapes in the image (scores are split by it). */
  shapeCount: number;
  /** The image's size as "width x height", e.g. "128x96" (scores are split by it: seen vs unseen sizes). */
  size: string;
}

/** The example of the first sample at or after `index` whose scene has a question of one of `types`. */
export function exampleAt(dataset: ShapesDataset, split: SplitName, index: number, types: readonly QuestionType[], slot = 0): Example {
  if (types.length === 0) throw new Error('exampleAt: expected at least one question type, got none');
  const size = SPLITS[split].size;
  for (let tries = 0; tries < 1000; tries++) {
    const i = (index + tries) % size;
    if (!dataset.allQuestions(split, i).some((q) => types.includes(q.type))) continue;
    const sample = dataset.question(split, i, { types, slot });
    const { type, text, answer } = sample.question;
    return {
      split,
      index: i,
      type,
      question: text,
      answer,
      image: sample.image,
      shapeCount: sample.scene.shapes.length,
      size: sizeKey(sample.image),
    };
  }
  throw new Error(
    `no ${split} scene near index ${index} has a question of type ${types.join('/')}; with these dataset options ` +
      "those questions cannot be asked (e.g. 'left-of' needs two or more shapes per image: raise shapesPerImage)",
  );
}

/**
 * A fixed held-out set: for each type, `perType` questions of that type about the first scenes of `split` that
 * have one (default the test split). Independent of any training seed; for unseen image sizes pass a dataset
 * built with them.
 */
export function heldOutExamples(dataset: ShapesDataset, types: readonly QuestionType[], perType: number, split: SplitName = 'test'): Example[] {
  if (!(Number.isInteger(perType) && perType >= 1)) throw new Error(`heldOutExamples: perType must be a positive integer, got ${perType}`);
  const examples: Example[] = [];
  for (const type of types) {
    let index = 0;
    for (let n = 0; n < perType; n++) {
      const example = exampleAt(dataset, split, index, [type]);
      examples.push(example);
      index = example.index + 1;
    }
  }
  return examples;
}

/**
 * The training examples of one step: `batchSize` questions (one per image) of the given types about train-split
 * scenes spread by a seeded hash, so a step's data is a pure function of (seed, step) and different seeds see
 * different scenes. Give each stage its own `step` range (e.g. an offset) if stages must not repeat scenes.
 */
export function trainingExamples(dataset: ShapesDataset, seed: number, step: number, batchSize: number, types: readonly QuestionType[]): Example[] {
  return Array.from({ length: batchSize }, (_, i) => exampleAt(dataset, 'train', deriveSeed(seed, (step * batchSize + i) >>> 0) % SPLITS.train.size, types));
}
