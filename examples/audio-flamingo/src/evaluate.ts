/**
 * Held-out exact match by greedy generation: each clip's question is asked and the answer counts when the words
 * generated before `<|endofchunk|>` are exactly the answer. The composed model generates with the clip; the
 * text-only LLM sees the same ids with the `<audio>` marker and no audio.
 */
import type { ComposedModel } from '@chimera/fusion';
import { generate, type CausalLM, type GenerationResult } from '@chimera/llm';
import type { AudioModality } from '@chimera/audio-encoder';
import { QUESTION_TYPES, type QuestionType } from '@chimera-examples/sounds-dataset';
import { clipSample, promptText, type Clip } from './data';
import { END_OF_CHUNK, decodeIds } from './vocabulary';

export interface Prediction {
  clip: Clip;
  answer: string;
  correct: boolean;
}

export interface TypeScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface Scores extends TypeScore {
  byType: Partial<Record<QuestionType, TypeScore>>;
  predictions: Prediction[];
}

const MAX_NEW_TOKENS = 3;

async function score(clips: readonly Clip[], batchSize: number, run: (batch: readonly Clip[]) => Promise<GenerationResult>): Promise<Scores> {
  const predictions: Prediction[] = [];
  for (let start = 0; start < clips.length; start += batchSize) {
    const batch = clips.slice(start, start + batchSize);
    const { tokens } = await run(batch);
    batch.forEach((clip, i) => {
      const row = tokens[i]!;
      const end = row.indexOf(END_OF_CHUNK);
      const answer = decodeIds(end < 0 ? row : row.slice(0, end));
      predictions.push({ clip, answer, correct: end >= 0 && answer === clip.question.answer });
    });
  }
  return summarize(predictions);
}

export function summarize(predictions: readonly Prediction[]): Scores {
  const tally = (list: readonly Prediction[]): TypeScore => {
    const correct = list.filter((p) => p.correct).length;
    return { correct, total: list.length, accuracy: list.length ? correct / list.length : 0 };
  };
  const byType: Partial<Record<QuestionType, TypeScore>> = {};
  for (const type of QUESTION_TYPES) {
    const list = predictions.filter((p) => p.clip.question.type === type);
    if (list.length) byType[type] = tally(list);
  }
  return { ...tally(predictions), byType, predictions: [...predictions] };
}

export function evaluateTextOnly(llm: CausalLM, clips: readonly Clip[], batchSize = 64): Promise<Scores> {
  return score(clips, batchSize, (batch) => generate(llm, batch.map(promptText), { maxNewTokens: MAX_NEW_TOKENS, eosTokenId: END_OF_CHUNK }));
}

export function evaluateComposed(model: ComposedModel, audio: AudioModality, clips: readonly Clip[], batchSize = 32): Promise<Scores> {
  return score(clips, batchSize, (batch) =>
    model.generate(
      batch.map((clip) => clipSample(clip, audio, true)),
      { maxNewTokens: MAX_NEW_TOKENS, eosTokenId: END_OF_CHUNK },
    ),
  );
}
