import { describe, expect, it } from 'vitest';
import {
  ANSWERS,
  PLURALS,
  QUESTION_TYPES,
  ShapesDataset,
  WORDS,
  questionWords,
  type Question,
  type Scene,
} from '../src/index';

/** Answers a question by reading the scene, independently of the templates' code. */
function answerFromScene(scene: Scene, question: Question): string {
  const words = questionWords(question.text);
  const shapes = scene.shapes;
  const only = <T>(items: T[]): T => {
    expect(items).toHaveLength(1);
    return items[0]!;
  };
  if (question.text.startsWith('what shape is the ')) return only(shapes.filter((s) => s.color === words[4])).kind;
  if (question.text.startsWith('what color is the ')) return only(shapes.filter((s) => s.kind === words[4])).color;
  if (question.text.startsWith('how many ')) {
    const kind = Object.entries(PLURALS).find(([, plural]) => plural === words[2])![0];
    return String(shapes.filter((s) => s.kind === kind).length);
  }
  if (question.text.endsWith(' small or large?')) return only(shapes.filter((s) => s.kind === words[2])).sizeClass;
  if (question.text.includes(' left of the ')) {
    const a = only(shapes.filter((s) => s.kind === words[2]));
    const b = only(shapes.filter((s) => s.kind === words[6]));
    return a.center.x < b.center.x ? 'yes' : 'no';
  }
  throw new Error(`unrecognised question: ${question.text}`);
}

describe('questions', () => {
  const dataset = new ShapesDataset({ imageSize: 48, shapesPerImage: { min: 1, max: 4 } });
  const samples = Array.from({ length: 1500 }, (_, i) => dataset.question('train', i));

  it('have the answer the scene gives, from the fixed answer set, in the closed word list', () => {
    for (const { scene, question } of samples) {
      expect(question.answer).toBe(answerFromScene(scene, question));
      expect(ANSWERS).toContain(question.answer);
      for (const word of [...questionWords(question.text), question.answer]) expect(WORDS).toContain(word);
    }
  });

  it('cover every type, with enough answer variety that the text alone cannot tell the answer', () => {
    const heldOut = Array.from({ length: 1500 }, (_, i) => dataset.question('test', i));
    for (const type of QUESTION_TYPES) {
      const ofType = samples.filter((s) => s.question.type === type);
      expect(ofType.length, type).toBeGreaterThan(100);
      // The best a text-only model can do: answer each question text with its most common training answer.
      const byText = new Map<string, Map<string, number>>();
      for (const { question } of ofType) {
        const answers = byText.get(question.text) ?? new Map<string, number>();
        answers.set(question.answer, (answers.get(question.answer) ?? 0) + 1);
        byText.set(question.text, answers);
      }
      const guess = (text: string) => [...(byText.get(text) ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      const test = heldOut.filter((s) => s.question.type === type);
      const accuracy = test.filter((s) => guess(s.question.text) === s.question.answer).length / test.length;
      if (process.env.SHOW_BASELINE) console.log(type, ofType.length, test.length, accuracy.toFixed(3));
      expect(accuracy, type).toBeLessThan(type === 'count' ? 0.6 : 0.62);
    }
  });

  it('list all unambiguous questions, including counts of absent kinds', () => {
    const all = dataset.allQuestions('test', 0);
    expect(all.filter((q) => q.type === 'count')).toHaveLength(dataset.kinds.length);
    const { scene } = dataset.sample('test', 0);
    for (const question of all) expect(question.answer).toBe(answerFromScene(scene, question));
  });

  it('give different draws for different slots and a clear error when no type applies', () => {
    const texts = new Set(Array.from({ length: 8 }, (_, slot) => dataset.question('train', 7, { slot }).question.text));
    expect(texts.size).toBeGreaterThan(1);
    const single = new ShapesDataset();
    expect(() => single.question('train', 0, { types: ['left-of'] })).toThrow(/no question of type left-of applies/);
    expect(single.question('train', 0, { types: ['shape'] }).question.answer).toBe(single.scene('train', 0).shapes[0]!.kind);
  });

  it('split into words with ? on its own', () => {
    expect(questionWords('how many stars are there?')).toEqual(['how', 'many', 'stars', 'are', 'there', '?']);
  });
});
