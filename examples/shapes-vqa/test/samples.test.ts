import { describe, expect, it } from 'vitest';
import type { SamplePart, TextPart } from '@chimera/fusion';
import { BOS, EOS, encodeWords, questionSample } from '../src';

const example = { question: 'what color is the square?', answer: 'red' };
const text = (part: SamplePart) => (part as TextPart).text;

describe('questionSample', () => {
  it('places a prepared item as the image part between <bos> and the question; only the answer and <eos> train', () => {
    const item = { views: 1 };
    const parts = questionSample(example, item, true) as SamplePart[];
    expect(parts).toEqual([
      { text: [BOS], trained: false },
      { modality: 'image', item },
      { text: encodeWords(example.question), trained: false },
      { text: [...encodeWords('red'), EOS] },
    ]);
    expect((parts[3] as TextPart).trained).toBeUndefined(); // trained by default
  });

  it('a prompt stops after the question; the text-only sample is the same without the image', () => {
    const prompt = questionSample(example, { views: 1 }, false) as SamplePart[];
    expect(prompt).toHaveLength(3);
    const textOnly = questionSample(example, null, true) as SamplePart[];
    expect(textOnly.map(text)).toEqual([[BOS], encodeWords(example.question), [...encodeWords('red'), EOS]]);
  });

  it('places caller-made parts as they are (extra tokens around the image)', () => {
    const parts: SamplePart[] = [{ text: [7], trained: false }, { modality: 'image', item: { views: 3 } }, { text: [8], trained: false }];
    const sample = questionSample(example, { parts }, true) as SamplePart[];
    expect(sample.slice(1, 4)).toEqual(parts);
    expect(sample).toHaveLength(6);
  });

  it('refuses an image that is not an object', () => {
    expect(() => questionSample(example, 3 as unknown as object, true)).toThrow(/prepared item, \{ parts: \[\.\.\.\] \} or null, got number/);
  });
});
