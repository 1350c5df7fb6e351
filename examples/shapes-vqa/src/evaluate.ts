/**
 * Exact match on held-out questions by greedy generation: right when the model writes the answer word and then
 * <eos>. Scores per question type, per type and shape count, and per image size ("128x96"), so an example can
 * report seen against unseen sizes.
 */
import type { ComposedModel } from '@chimera/fusion';
import type { QuestionType } from '@chimera-examples/shapes-dataset';
import type { Example } from './examples';
import { questionSample, type SampleImage } from './samples';
import { EOS, decodeWords } from './vocabulary';

export interface Score {
  correct: number;
  total: number;
  accuracy: number;
}

/** Scores of a set of examples, split several ways. */
export interface ScoreBreakdown {
  /** Over every example. */
  overall: Score;
  byType: Partial<Record<QuestionType, Score>>;
  /** Per type, then per number of shapes in the image ('1', '2', ...). */
  byTypeAndShapes: Partial<Record<QuestionType, Record<string, Score>>>;
  /** Per image size ('128x96'), all types together. */
  bySize: Record<string, Score>;
  /** Per type, then per image size. */
  byTypeAndSize: Partial<Record<QuestionType, Record<string, Score>>>;
}

export interface ExactMatch extends ScoreBreakdown {
  /** The generated answer of each example (without <eos>; '<eos>' alone when the model stopped at once). */
  answers: string[];
  /** Whether each example was answered exactly. */
  correct: boolean[];
}

/** Longest answer the model may write: one word and <eos>, plus one token to see that it would not stop. */
const MAX_NEW_TOKENS = 2;

/**
 * Answers every example by greedy decoding, in batches, with the image of each example (`images[i]`: its
 * prepared item or parts, see questionSample) or without any (`images: null`: the text-only baseline).
 */
export async function answerExamples(
  model: Pick<ComposedModel, 'generate'>,
  examples: readonly Example[],
  images: readonly SampleImage[] | null,
  batchSize = 100,
): Promise<{ answers: string[]; correct: boolean[] }> {
  if (images && images.length !== examples.length) {
    throw new Error(`answerExamples: got ${images.length} images for ${examples.length} examples; give one image per example, or null for the text-only baseline`);
  }
  const answers: string[] = [];
  const correct: boolean[] = [];
  for (let start = 0; start < examples.length; start += batchSize) {
    const batch = examples.slice(start, start + batchSize);
    const prompts = batch.map((example, i) => questionSample(example, images ? images[start + i]! : null, false));
    const { tokens } = await model.generate(prompts, { maxNewTokens: MAX_NEW_TOKENS, eosTokenId: EOS });
    tokens.forEach((row, i) => {
      const stop = row.indexOf(EOS);
      const words = stop >= 0 ? row.slice(0, stop) : row;
      answers.push(words.length > 0 ? decodeWords(words) : '<eos>');
      correct.push(stop === 1 && decodeWords(words) === batch[i]!.answer);
    });
  }
  return { answers, correct };
}

/** Answers and scores the examples (see answerExamples for `images`). */
export async function exactMatch(
  model: Pick<ComposedModel, 'generate'>,
  examples: readonly Example[],
  images: readonly SampleImage[] | null,
  batchSize?: number,
): Promise<ExactMatch> {
  const { answers, correct } = await answerExamples(model, examples, images, batchSize);
  return { ...scoreExamples(examples, correct), answers, correct };
}

/** Splits right/wrong flags (one per example) by type, shape count and image size. */
export function scoreExamples(examples: readonly Pick<Example, 'type' | 'shapeCount' | 'size'>[], correct: readonly boolean[]): ScoreBreakdown {
  if (correct.length !== examples.length) throw new Error(`scoreExamples: got ${correct.length} flags for ${examples.length} examples; give one per example`);
  const empty = (): Score => ({ correct: 0, total: 0, accuracy: 0 });
  const add = (score: Score, right: boolean) => {
    score.total++;
    if (right) score.correct++;
    score.accuracy = score.correct / score.total;
  };
  const result: ScoreBreakdown = { overall: empty(), byType: {}, byTypeAndShapes: {}, bySize: {}, byTypeAndSize: {} };
  examples.forEach((example, i) => {
    const right = correct[i]!;
    add(result.overall, right);
    add((result.byType[example.type] ??= empty()), right);
    add(((result.byTypeAndShapes[example.type] ??= {})[String(example.shapeCount)] ??= empty()), right);
    add((result.bySize[example.size] ??= empty()), right);
    add(((result.byTypeAndSize[example.type] ??= {})[example.size] ??= empty()), right);
  });
  return result;
}

/** Accuracies only, for metrics.json: overall, per type, per type by shapes, per size, per type by size. */
export function accuracies(score: ScoreBreakdown) {
  const flat = (byKey: Partial<Record<string, Score>>) => Object.fromEntries(Object.entries(byKey).map(([key, s]) => [key, s!.accuracy]));
  const nested = (byKey: Partial<Record<string, Record<string, Score>>>) => Object.fromEntries(Object.entries(byKey).map(([key, inner]) => [key, flat(inner!)]));
  return {
    overall: score.overall.accuracy,
    byType: flat(score.byType),
    byTypeAndShapes: nested(score.byTypeAndShapes),
    bySize: flat(score.bySize),
    byTypeAndSize: nested(score.byTypeAndSize),
  };
}

/** '95.5%' ('-' for a missing score). */
export function percent(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? '-' : `${(100 * value).toFixed(1)}%`;
}

/** 'shape 95.5%, color 99.0%'. */
export function describeScore(score: ScoreBreakdown, types: readonly QuestionType[]): string {
  return types.map((type) => `${type} ${percent(score.byType[type]?.accuracy)}`).join(', ');
}
