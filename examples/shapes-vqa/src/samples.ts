/**
 * The composed-model sample of a question. The image-grounded and the text-only (baseline) samples are built by
 * the same function, so the two models see the same questions and answers and differ only in the image:
 *
 *   with the image: <bos> [image] what color is the square ? | red <eos>
 *   text only:      <bos> what color is the square ? | red <eos>
 *
 * Left of '|' is the prompt (no loss); the answer and <eos> are trained.
 */
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import type { Example } from './examples';
import { BOS, EOS, encodeWords } from './vocabulary';

/**
 * The image of a sample: a prepared item of the image modality (`modality.prepare(image)`), placed as
 * `{ modality: 'image', item }`; or, for strategies that need more around it (tile tags, separators), the parts
 * to place as they are.
 */
export type SampleImage = { parts: readonly SamplePart[] } | object;

/** What a sample needs of an example. */
export type QuestionAnswer = Pick<Example, 'question' | 'answer'>;

/**
 * The sample of one example: with `image` it sits between <bos> and the question; with `image: null` it is left
 * out (the text-only baseline). `withAnswer` adds the trained answer and <eos> (training); without, the sample is
 * a generation prompt.
 */
export function questionSample(example: QuestionAnswer, image: SampleImage | null, withAnswer: boolean): ComposedSample {
  const parts: SamplePart[] = [{ text: [BOS], trained: false }];
  if (image !== null) parts.push(...imageParts(image));
  parts.push({ text: encodeWords(example.question), trained: false });
  if (withAnswer) parts.push({ text: [...encodeWords(example.answer), EOS] });
  return parts;
}

function imageParts(image: SampleImage): readonly SamplePart[] {
  if (typeof image !== 'object') {
    throw new Error(`questionSample: image must be a prepared item, { parts: [...] } or null, got ${typeof image}`);
  }
  if ('parts' in image && Array.isArray(image.parts)) return image.parts as readonly SamplePart[];
  return [{ modality: 'image', item: image }];
}
