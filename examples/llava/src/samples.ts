/**
 * Question/answer examples from the shapes dataset, and their samples for the composed model. The image-grounded
 * and the text-only (baseline) samples are built by the same function, so the two models see the same questions
 * and answers and differ only in the image:
 *
 *   with the image: <bos> <image> what color is the square ? | red <eos>
 *   text only:      <bos> what color is the square ? | red <eos>
 *
 * Everything left of '|' is the prompt (no loss); the answer and <eos> are trained. Training samples may hold
 * several turns about the same image, as LLaVA's instruction data does (more answers per encoded image):
 *
 *   <bos> <image> what color is the square ? | red <eos> | how many stars are there ? | 2 <eos>
 */
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import { SPLITS, deriveSeed, type QuestionType, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, encodeWords } from './vocabulary';

export interface Example {
  split: SplitName;
  index: number;
  type: QuestionType;
  question: string;
  answer: string;
  image: RgbImage;
  /** Shapes in the image (the failure analysis splits scores by it). */
  shapeCount: number;
}

/**
 * The sample of one example: with `image` (its prepared item) the image sits between <bos> and the question;
 * with `image: null` it is left out (the text-only baseline). `withAnswer` adds the trained answer (training);
 * without it the sample is a generation prompt.
 */
export function questionSample(example: Pick<Example, 'question' | 'answer'>, image: PreparedImage | null, withAnswer: boolean): ComposedSample {
  const parts: SamplePart[] = [{ text: [BOS], trained: false }];
  if (image) parts.push({ modality: 'image', item: image });
  parts.push({ text: encodeWords(example.question), trained: false });
  if (withAnswer) parts.push({ text: [...encodeWords(example.answer), EOS] });
  return parts;
}

/** A training sample of several question/answer turns about one image (or none: the baseline). */
export function conversationSample(turns: readonly Pick<Example, 'question' | 'answer'>[], image: PreparedImage | null): ComposedSample {
  const [first, ...rest] = turns;
  if (!first) throw new Error('conversationSample: expected at least one question/answer turn');
  const parts = [...(questionSample(first, image, true) as SamplePart[])];
  for (const turn of rest) {
    parts.push({ text: encodeWords(turn.question), trained: false }, { text: [...encodeWords(turn.answer), EOS] });
  }
  return parts;
}

/** The example of the first sample at or after `index` whose scene has a question of one of `types`. */
function exampleAt(dataset: ShapesDataset, split: SplitName, index: number, types: readonly QuestionType[], slot = 0): Example {
  const size = SPLITS[split].size;
  for (let tries = 0; tries < 1000; tries++) {
    const i = (index + tries) % size;
    if (!dataset.allQuestions(split, i).some((q) => types.includes(q.type))) continue;
    const sample = dataset.question(split, i, { types, slot });
    const { type, text, answer } = sample.question;
    return { split, index: i, type, question: text, answer, image: sample.image, shapeCount: sample.scene.shapes.length };
  }
  throw new Error(
    `no ${split} scene near index ${index} has a question of type ${types.join('/')}; with these dataset options ` +
      "those questions cannot be asked (e.g. 'left-of' needs two or more shapes per image)",
  );
}

/**
 * The training conversations of a step, one per image: up to `turns` different questions about it. Images are
 * spread over the whole train split by a seeded bijective hash, so a step's data is a pure function of
 * (seed, step) and runs with different seeds see different scenes.
 */
export function trainingConversations(
  dataset: ShapesDataset,
  seed: number,
  step: number,
  batchSize: number,
  types: readonly QuestionType[],
  turns = 1,
): Example[][] {
  return Array.from({ length: batchSize }, (_, i) => {
    const index = deriveSeed(seed, (step * batchSize + i) >>> 0) % SPLITS.train.size;
    const first = exampleAt(dataset, 'train', index, types);
    const conversation = [first];
    for (let slot = 1; slot < turns; slot++) {
      const next = exampleAt(dataset, 'train', first.index, types, slot);
      if (!conversation.some((e) => e.question === next.question)) conversation.push(next);
    }
    return conversation;
  });
}

/**
 * A fixed held-out set: for each type, `perType` questions of that type about the first test scenes that have
 * one (independent of the training seed).
 */
export function heldOutExamples(dataset: ShapesDataset, types: readonly QuestionType[], perType: number, split: SplitName = 'test'): Example[] {
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
