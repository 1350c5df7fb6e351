import { describe, expect, it } from 'vitest';
import type { SamplePart, TextPart } from '@chimera/fusion';
import { ShapesDataset, fineDetailOptions, type QuestionType } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, conversationSample, conversationTurns, encodeWords, trainingExamples } from '../src';

const dataset = new ShapesDataset(fineDetailOptions({ shapesPerImage: 3, seed: 0 }));
const types: readonly QuestionType[] = ['shape', 'color', 'count', 'left-of'];

describe('conversations', () => {
  it('adds other questions about the same scene, each shape the subject of one turn at most', () => {
    const examples = trainingExamples(dataset, 1, 0, 16, types);
    let extra = 0;
    for (const example of examples) {
      const turns = conversationTurns(dataset, example, types, { maxTurns: 4, seed: 1 });
      expect(turns[0]).toBe(example);
      expect(turns.length).toBeLessThanOrEqual(4);
      extra += turns.length - 1;
      const questions = dataset.allQuestions(example.split, example.index);
      const subjects = turns.flatMap((t) => questions.find((q) => q.text === t.question)!.shapes);
      expect(new Set(subjects).size).toBe(subjects.length);
      for (const t of turns) expect(t.index === example.index && t.image === example.image && types.includes(t.type)).toBe(true);
      expect(new Set(turns.map((t) => t.question)).size).toBe(turns.length);
    }
    expect(extra).toBeGreaterThan(16); // three shapes per scene: usually more than one turn
    // seeded: the same turns again; another seed reorders some
    const key = (seed: number) => examples.map((e) => conversationTurns(dataset, e, types, { maxTurns: 4, seed }).map((t) => t.question).join('|')).join('/');
    expect(key(1)).toBe(key(1));
    expect(key(2)).not.toBe(key(1));
  });

  it('without distinct shapes, takes the first maxTurns - 1 others', () => {
    const [example] = trainingExamples(dataset, 1, 0, 1, types);
    const all = dataset.allQuestions(example!.split, example!.index).filter((q) => types.includes(q.type));
    const turns = conversationTurns(dataset, example!, types, { maxTurns: 100, seed: 1, distinctShapes: false });
    expect(turns).toHaveLength(all.length);
    expect(conversationTurns(dataset, example!, types, { maxTurns: 1, seed: 1 })).toEqual([example]);
    expect(() => conversationTurns(dataset, example!, types, { maxTurns: 0, seed: 1 })).toThrow(/maxTurns must be an integer >= 1, got 0/);
    expect(() => conversationTurns(dataset, { ...example!, question: 'what shape is the gray one?' }, types, { maxTurns: 2, seed: 1 })).toThrow(/is not a question about/);
  });

  it('a conversation sample trains every answer and <eos>, no prompt', () => {
    const turns = [
      { question: 'what shape is the red one?', answer: 'star' },
      { question: 'what color is the circle?', answer: 'blue' },
    ];
    const parts = conversationSample(turns, { views: 1 }) as SamplePart[];
    expect(parts).toHaveLength(6);
    const text = (i: number) => (parts[i] as TextPart);
    expect(text(0)).toEqual({ text: [BOS], trained: false });
    expect(text(4)).toEqual({ text: encodeWords(turns[1]!.question), trained: false });
    expect(text(5)).toEqual({ text: [...encodeWords('blue'), EOS] });
    expect(() => conversationSample([], null)).toThrow(/at least one/);
  });
});
