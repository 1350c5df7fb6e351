// Questions and answers about a scene, from fixed templates with a fixed answer vocabulary, in the style of
// CLEVR (Johnson et al. 2017) at toy scale: only questions with exactly one right answer are asked.
import { COLOR_NAMES } from './palette';
import { PLURALS, SHAPE_KINDS, type ShapeKind } from './kinds';
import type { SeededRandom } from './random';
import type { Scene, SceneShape } from './scene';

export const QUESTION_TYPES = ['shape', 'color', 'count', 'size', 'left-of'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

export interface Question {
  type: QuestionType;
  /** Lower case, words separated by single spaces, ending in '?'. */
  text: string;
  /** One entry of ANSWERS. */
  answer: string;
  /** Indices into scene.shapes of the shapes the question is about (empty for a count of an absent kind). */
  shapes: number[];
}

const COUNT_WORDS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** Every answer any question can have, in a fixed order (the answer classes of a classifier head). */
export const ANSWERS: readonly string[] = [...SHAPE_KINDS, ...COLOR_NAMES, ...COUNT_WORDS, 'small', 'large', 'yes', 'no'];

const TEMPLATE_WORDS = ['what', 'shape', 'is', 'the', 'one', 'color', 'how', 'many', 'are', 'there', 'small', 'or', 'large', 'left', 'of', '?'];

/** Every word of every question and answer (with '?' as its own word), sorted: a closed word-level vocabulary. */
export const WORDS: readonly string[] = [...new Set([...TEMPLATE_WORDS, ...Object.values(PLURALS), ...ANSWERS])].sort();

/** Splits a question or answer into WORDS entries ('?' becomes its own word). */
export function questionWords(text: string): string[] {
  return text.replace(/\?/g, ' ?').trim().split(/\s+/);
}

/**
 * Horizontal centres closer than this fraction of the larger shape's size make "left of" ambiguous: such
 * pairs are not asked about.
 */
export const LEFT_OF_MARGIN = 0.5;

/** All unambiguous questions about a scene; count questions cover every kind in `kinds` (absent ones answer '0'). */
export function questionsFor(scene: Scene, kinds: readonly ShapeKind[]): Question[] {
  const shapes = scene.shapes;
  const questions: Question[] = [];
  const indicesOf = (match: (s: SceneShape) => boolean) => shapes.flatMap((s, i) => (match(s) ? [i] : []));
  const uniqueKinds = kinds.filter((kind) => indicesOf((s) => s.kind === kind).length === 1);

  for (const color of COLOR_NAMES) {
    const found = indicesOf((s) => s.color === color);
    if (found.length === 1) questions.push({ type: 'shape', text: `what shape is the ${color} one?`, answer: shapes[found[0]!]!.kind, shapes: found });
  }
  for (const kind of uniqueKinds) {
    const found = indicesOf((s) => s.kind === kind);
    const shape = shapes[found[0]!]!;
    questions.push({ type: 'color', text: `what color is the ${kind}?`, answer: shape.color, shapes: found });
    questions.push({ type: 'size', text: `is the ${kind} small or large?`, answer: shape.sizeClass, shapes: found });
  }
  for (const kind of kinds) {
    const found = indicesOf((s) => s.kind === kind);
    questions.push({ type: 'count', text: `how many ${PLURALS[kind]} are there?`, answer: COUNT_WORDS[found.length]!, shapes: found });
  }
  for (const first of uniqueKinds) {
    for (const second of uniqueKinds) {
      if (first === second) continue;
      const a = indicesOf((s) => s.kind === first)[0]!;
      const b = indicesOf((s) => s.kind === second)[0]!;
      const dx = shapes[b]!.center.x - shapes[a]!.center.x;
      if (Math.abs(dx) < LEFT_OF_MARGIN * Math.max(shapes[a]!.size, shapes[b]!.size)) continue;
      questions.push({ type: 'left-of', text: `is the ${first} left of the ${second}?`, answer: dx > 0 ? 'yes' : 'no', shapes: [a, b] });
    }
  }
  return questions;
}

/**
 * One question: a type drawn uniformly from the requested types that have a question for this scene, then a
 * question of that type. Count questions ask about a kind present in the scene half of the time (otherwise
 * '0' would dominate). Returns null when none of the types applies.
 */
export function sampleQuestion(
  scene: Scene,
  kinds: readonly ShapeKind[],
  rng: SeededRandom,
  types: readonly QuestionType[] = QUESTION_TYPES,
): Question | null {
  const all = questionsFor(scene, kinds);
  const available = types.filter((type) => all.some((q) => q.type === type));
  if (available.length === 0) return null;
  const type = rng.pick(available);
  let pool = all.filter((q) => q.type === type);
  if (type === 'count' && rng.chance(0.5)) {
    const present = pool.filter((q) => q.answer !== '0');
    if (present.length > 0) pool = present;
  }
  return rng.pick(pool);
}
