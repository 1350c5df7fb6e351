/**
 * Held-out exact match by greedy generation: each episode's last question is asked (earlier chunks are given in
 * full, as context) and the answer counts when the generated words before `<|endofchunk|>` are exactly the
 * answer. The composed model generates with its media keys/values cached; the text-only LLM sees the same ids
 * with the `<image>` markers but no pixels.
 */
import type { ComposedModel } from '@chimera/fusion';
import { generate, type CausalLM, type GenerationResult } from '@chimera/llm';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import { QUESTION_TYPES, type QuestionType } from '@chimera-examples/shapes-dataset';
import { episodeSample } from './batches';
import { promptText, type Episode } from './episodes';
import { END_OF_CHUNK, decodeIds } from './vocabulary';

export interface Prediction {
  episode: Episode;
  /** The generated words before `<|endofchunk|>` (all of them when it never came). */
  answer: string;
  correct: boolean;
}

export interface TypeScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface Scores {
  accuracy: number;
  correct: number;
  total: number;
  byType: Partial<Record<QuestionType, TypeScore>>;
  /** Episodes by their image count ('1', '2', ...): the multi-image rows check the media masking. */
  byImageCount: Record<string, TypeScore>;
  predictions: Prediction[];
}

/** Answer words allowed before the end of the chunk; a longer run is wrong anyway. */
const MAX_NEW_TOKENS = 3;

/** Scores a generator of continuations over the episodes, `batchSize` prompts at a time. */
async function score(
  episodes: readonly Episode[],
  batchSize: number,
  run: (batch: readonly Episode[]) => Promise<GenerationResult>,
): Promise<Scores> {
  const predictions: Prediction[] = [];
  for (let start = 0; start < episodes.length; start += batchSize) {
    const batch = episodes.slice(start, start + batchSize);
    const { tokens } = await run(batch);
    batch.forEach((episode, i) => {
      const row = tokens[i]!;
      const end = row.indexOf(END_OF_CHUNK);
      const answer = decodeIds(end < 0 ? row : row.slice(0, end));
      const expected = episode.chunks.at(-1)!.question.answer;
      predictions.push({ episode, answer, correct: end >= 0 && answer === expected });
    });
  }
  return summarize(predictions);
}

function summarize(predictions: readonly Prediction[]): Scores {
  const tally = (list: readonly Prediction[]): TypeScore => {
    const correct = list.filter((p) => p.correct).length;
    return { correct, total: list.length, accuracy: list.length > 0 ? correct / list.length : 0 };
  };
  const byType: Partial<Record<QuestionType, TypeScore>> = {};
  for (const type of QUESTION_TYPES) {
    const list = predictions.filter((p) => p.episode.chunks.at(-1)!.question.type === type);
    if (list.length > 0) byType[type] = tally(list);
  }
  const byImageCount: Record<string, TypeScore> = {};
  const counts = [...new Set(predictions.map((p) => p.episode.chunks.length))].sort((a, b) => a - b);
  for (const count of counts) byImageCount[String(count)] = tally(predictions.filter((p) => p.episode.chunks.length === count));
  const all = tally(predictions);
  return { ...all, byType, byImageCount, predictions: [...predictions] };
}

/** The text-only LLM: the same prompts as ids, `<image>` markers included, no pixels. */
export function evaluateTextOnly(llm: CausalLM, episodes: readonly Episode[], batchSize = 64): Promise<Scores> {
  return score(episodes, batchSize, (batch) =>
    generate(llm, batch.map(promptText), { maxNewTokens: MAX_NEW_TOKENS, eosTokenId: END_OF_CHUNK }),
  );
}

/** The composed model: interleaved prompts with their images; media keys/values are cached during generation. */
export function evaluateComposed(
  model: ComposedModel,
  prepare: (image: RgbImage) => PreparedImage,
  episodes: readonly Episode[],
  batchSize = 64,
): Promise<Scores> {
  return score(episodes, batchSize, (batch) =>
    model.generate(
      batch.map((episode) => episodeSample(episode, prepare, true)),
      { maxNewTokens: MAX_NEW_TOKENS, eosTokenId: END_OF_CHUNK },
    ),
  );
}
