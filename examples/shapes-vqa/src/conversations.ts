/**
 * Training samples of several question/answer turns about one image (LLaVA's and Qwen2-VL's instruction data are
 * multi-turn): every turn after the first reads the same image tokens, so one encoded image (the costly part of a
 * step) teaches several answers.
 *
 *   <bos> [image] what shape is the red one ? | star <eos> what color is the circle ? | blue <eos> ...
 *
 * Only the answers and their <eos> are trained. Held-out prompts stay single-turn (questionSample), which is the
 * first turn of these.
 */
import type { ComposedSample, SamplePart } from '@chimera/fusion';
import { SeededRandom, deriveSeed, type QuestionType, type ShapesDataset } from '@chimera-examples/shapes-dataset';
import type { Example } from './examples';
import { questionSample, type QuestionAnswer, type SampleImage } from './samples';
import { EOS, encodeWords } from './vocabulary';

export interface ConversationOptions {
  /** Most turns, the first included (1: the example alone). */
  maxTurns: number;
  /** Seeds the order the scene's other questions are drawn in (with the example's index). */
  seed: number;
  /**
   * Each shape is the subject of one turn at most (default true), so no turn names or answers what another asks
   * ("what color is the square?" would give away "what shape is the red one?" about the same square).
   */
  distinctShapes?: boolean;
}

/**
 * The example, then up to `maxTurns - 1` other questions of `types` about the same scene, in a seeded order. The
 * questions come from the scene description; no image is rendered again (every turn shares the example's image).
 */
export function conversationTurns(dataset: ShapesDataset, example: Example, types: readonly QuestionType[], options: ConversationOptions): Example[] {
  const { maxTurns, seed, distinctShapes = true } = options;
  if (!(Number.isInteger(maxTurns) && maxTurns >= 1)) throw new Error(`conversationTurns: maxTurns must be an integer >= 1, got ${maxTurns}`);
  if (maxTurns === 1) return [example];
  const questions = dataset.allQuestions(example.split, example.index);
  const first = questions.find((q) => q.text === example.question);
  if (!first) throw new Error(`conversationTurns: "${example.question}" is not a question about ${example.split} scene ${example.index} of this dataset; pass the dataset the example came from`);
  const others = questions.filter((q) => types.includes(q.type) && q.text !== example.question);
  const rng = new SeededRandom(deriveSeed(seed, example.index));
  for (let i = others.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [others[i], others[j]] = [others[j]!, others[i]!];
  }
  const asked = new Set(first.shapes);
  const turns = [example];
  for (const q of others) {
    if (turns.length >= maxTurns) break;
    if (distinctShapes && q.shapes.some((s) => asked.has(s))) continue;
    q.shapes.forEach((s) => asked.add(s));
    turns.push({ ...example, type: q.type, question: q.text, answer: q.answer });
  }
  return turns;
}

/** The training sample of turns about one image: the first as questionSample, the rest appended (prompt, answer). */
export function conversationSample(turns: readonly QuestionAnswer[], image: SampleImage | null): ComposedSample {
  const [first, ...rest] = turns;
  if (!first) throw new Error('conversationSample: expected at least one question/answer turn, got none');
  const parts = [...(questionSample(first, image, true) as SamplePart[])];
  for (const turn of rest) parts.push({ text: encodeWords(turn.question), trained: false }, { text: [...encodeWords(turn.answer), EOS] });
  return parts;
}
