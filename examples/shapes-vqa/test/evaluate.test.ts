import { describe, expect, it } from 'vitest';
import type { ComposedModel } from '@chimera/fusion';
import { EOS, accuracies, answerExamples, encodeWords, exactMatch, scoreExamples, type Example } from '../src';

const example = (type: Example['type'], answer: string, shapeCount: number, size: string): Example =>
  ({ split: 'test', index: 0, type, question: 'what shape is the red one?', answer, image: { data: new Uint8Array(3), width: 1, height: 1 }, shapeCount, size }) as Example;

/** A model that writes the given rows, whatever the prompt. */
const fixedModel = (rows: number[][]): Pick<ComposedModel, 'generate'> => ({
  generate: async (prompts) => {
    const n = (prompts as unknown[]).length;
    return { tokens: rows.slice(0, n) } as Awaited<ReturnType<ComposedModel['generate']>>;
  },
});

describe('exact match', () => {
  it('is right only for the answer word followed by <eos>', async () => {
    const [circle] = encodeWords('circle');
    const [square] = encodeWords('square');
    const examples = [example('shape', 'circle', 1, '96x96'), example('shape', 'circle', 2, '96x96'), example('shape', 'circle', 2, '128x96'), example('shape', 'circle', 3, '128x96')];
    const model = fixedModel([
      [circle!, EOS], // right
      [circle!, square!], // does not stop
      [square!, EOS], // wrong word
      [EOS, EOS], // stops at once
    ]);
    const { answers, correct } = await answerExamples(model, examples, null);
    expect(correct).toEqual([true, false, false, false]);
    expect(answers).toEqual(['circle', 'circle square', 'square', '<eos>']);
    await expect(answerExamples(model, examples, [{}])).rejects.toThrow(/got 1 images for 4 examples/);
  });

  it('scores per type, per type and shape count, per size and per type and size', () => {
    const examples = [
      example('shape', 'circle', 1, '96x96'),
      example('shape', 'circle', 2, '128x96'),
      example('color', 'red', 2, '128x96'),
      example('color', 'red', 2, '96x96'),
      example('color', 'red', 3, '96x96'),
    ];
    const score = scoreExamples(examples, [true, false, true, true, false]);
    expect(score.overall).toEqual({ correct: 3, total: 5, accuracy: 0.6 });
    expect(score.byType.shape).toEqual({ correct: 1, total: 2, accuracy: 0.5 });
    expect(score.byType.color!.accuracy).toBeCloseTo(2 / 3);
    expect(score.byTypeAndShapes.color).toEqual({ '2': { correct: 2, total: 2, accuracy: 1 }, '3': { correct: 0, total: 1, accuracy: 0 } });
    expect(score.bySize['96x96']!.accuracy).toBeCloseTo(2 / 3);
    expect(score.bySize['128x96']).toEqual({ correct: 1, total: 2, accuracy: 0.5 });
    expect(score.byTypeAndSize.color!['96x96']).toEqual({ correct: 1, total: 2, accuracy: 0.5 });
    expect(accuracies(score).byTypeAndSize).toEqual({ shape: { '96x96': 1, '128x96': 0 }, color: { '128x96': 1, '96x96': 0.5 } });
    expect(() => scoreExamples(examples, [true])).toThrow(/got 1 flags for 5 examples/);
  });

  it('exactMatch answers in batches and keeps the example order', async () => {
    const [circle] = encodeWords('circle');
    const calls: number[] = [];
    const model: Pick<ComposedModel, 'generate'> = {
      generate: async (prompts) => {
        calls.push((prompts as unknown[]).length);
        return { tokens: (prompts as unknown[]).map(() => [circle!, EOS]) } as Awaited<ReturnType<ComposedModel['generate']>>;
      },
    };
    const examples = [example('shape', 'circle', 1, '96x96'), example('shape', 'square', 1, '96x96'), example('shape', 'circle', 1, '96x96')];
    const score = await exactMatch(model, examples, [{}, {}, {}], 2);
    expect(calls).toEqual([2, 1]);
    expect(score.correct).toEqual([true, false, true]);
  });
});
