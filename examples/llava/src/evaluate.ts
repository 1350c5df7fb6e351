// Held-out exact match per question type: greedy generation of the answer, which must be the right word followed by <eos>.
import type { ComposedModel } from '@chimera/fusion';
import type { QuestionType } from '@chimera-examples/shapes-dataset';
import type { PreparedImage } from '@chimera/vision-encoder';
import { questionSample, type Example } from './samples';
import { EOS, decodeWords } from './vocabulary';

export interface TypeScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface ExactMatch {
  /** Over every example. */
  overall: TypeScore;
  byType: Partial<Record<QuestionType, TypeScore>>;
  /** Per type, then per number of shapes in the image ('1', '2', ...). */
  byTypeAndShapes: Partial<Record<QuestionType, Record<string, TypeScore>>>;
  /** The generated answer of each example (without <eos>; '<eos>' alone when the model stopped at once). */
  answers: string[];
  /** Whether each example was answered exactly. */
  correct: boolean[];
}

/** Longest answer the model may write: one word and <eos>, plus one token to see that it would not stop. */
const MAX_NEW_TOKENS = 2;

/**
 * Answers every example by greedy decoding, with the image (`images[i]`, its prepared item) or without it
 * (`images: null`: the text-only baseline), in batches.
 */
export async function answerExamples(
  model: ComposedModel,
  examples: readonly Example[],
  images: readonly PreparedImage[] | null,
  batchSize = 100,
): Promise<{ answers: string[]; correct: boolean[] }> {
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
      // Exact: the answer's single word, then <eos>.
      correct.push(stop === 1 && decodeWords(words) === batch[i]!.answer);
    });
  }
  return { answers, correct };
}

/** Scores examples per question type. */
export async function exactMatch(
  model: ComposedModel,
  examples: readonly Example[],
  images: readonly PreparedImage[] | null,
  batchSize?: number,
): Promise<ExactMatch> {
  const { answers, correct } = await answerExamples(model, examples, images, batchSize);
  return { ...scoreByType(examples, correct), answers, correct };
}

export function scoreByType(examples: readonly Example[], correct: readonly boolean[]): Pick<ExactMatch, 'overall' | 'byType' | 'byTypeAndShapes'> {
  const byType: Partial<Record<QuestionType, TypeScore>> = {};
  const byTypeAndShapes: Partial<Record<QuestionType, Record<string, TypeScore>>> = {};
  const add = (score: TypeScore, right: boolean) => {
    score.total++;
    if (right) score.correct++;
    score.accuracy = score.correct / score.total;
  };
  const overall: TypeScore = { correct: 0, total: 0, accuracy: 0 };
  examples.forEach((example, i) => {
    const score = (byType[example.type] ??= { correct: 0, total: 0, accuracy: 0 });
    add(score, correct[i]!);
    add(((byTypeAndShapes[example.type] ??= {})[String(example.shapeCount)] ??= { correct: 0, total: 0, accuracy: 0 }), correct[i]!);
    add(overall, correct[i]!);
  });
  return { overall, byType, byTypeAndShapes };
}
