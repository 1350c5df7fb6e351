import { describe, expect, it } from 'vitest';
import { ANSWERS, FINE_DETAIL_SEEN_SIZES, ShapesDataset, WORDS, fineDetailOptions, sizeKey } from '@chimera-examples/shapes-dataset';
import { BOS, EOS, IMAGE, PAD, VOCAB_SIZE, decodeWords, encodeWords, exampleAt, heldOutExamples, trainingExamples } from '../src';

const dataset = new ShapesDataset(fineDetailOptions({ sizes: 'seen', seed: 0 }));

describe('vocabulary', () => {
  it('holds four distinct special tokens and every dataset word, one token per word', () => {
    expect(new Set([PAD, BOS, EOS, IMAGE]).size).toBe(4);
    expect(VOCAB_SIZE).toBe(4 + WORDS.length);
    for (const answer of ANSWERS) expect(encodeWords(answer)).toHaveLength(1);
    const ids = encodeWords('what color is the square?');
    expect(ids).toHaveLength(6);
    expect(decodeWords(ids)).toBe('what color is the square?');
    expect(() => encodeWords('what colour is it?')).toThrow(/not a word of the shapes dataset/);
  });
});

describe('examples', () => {
  it('a held-out set has perType questions of each type, fixed, on images of several seen sizes', () => {
    const types = ['shape', 'color', 'count', 'left-of'] as const;
    const heldOut = heldOutExamples(dataset, types, 20);
    expect(heldOut).toHaveLength(80);
    types.forEach((type, t) => expect(heldOut.slice(t * 20, (t + 1) * 20).every((e) => e.type === type)).toBe(true));
    expect(heldOut.every((e) => e.split === 'test')).toBe(true);
    // the same questions whenever it is built (it takes no training seed)
    expect(heldOutExamples(dataset, types, 20).map((e) => `${e.index}:${e.question}`)).toEqual(heldOut.map((e) => `${e.index}:${e.question}`));
    const seen = FINE_DETAIL_SEEN_SIZES.map(sizeKey);
    expect(heldOut.every((e) => seen.includes(e.size) && e.size === sizeKey(e.image))).toBe(true);
    expect(new Set(heldOut.map((e) => e.size)).size).toBeGreaterThanOrEqual(3);
    expect(heldOut.every((e) => e.shapeCount >= 1 && e.shapeCount <= 3)).toBe(true);
    // left-of needs two shapes
    expect(heldOut.filter((e) => e.type === 'left-of').every((e) => e.shapeCount >= 2)).toBe(true);
    // within a type, distinct scenes
    const shapeIndices = heldOut.filter((e) => e.type === 'shape').map((e) => e.index);
    expect(new Set(shapeIndices).size).toBe(20);
  });

  it('training examples are a pure function of (seed, step) and differ between seeds and steps', () => {
    const a = trainingExamples(dataset, 1, 5, 8, ['shape', 'color']);
    expect(a).toHaveLength(8);
    expect(a.every((e) => e.split === 'train' && (e.type === 'shape' || e.type === 'color'))).toBe(true);
    const key = (xs: typeof a) => xs.map((e) => `${e.index}:${e.question}`).join('|');
    expect(key(trainingExamples(dataset, 1, 5, 8, ['shape', 'color']))).toBe(key(a));
    expect(key(trainingExamples(dataset, 2, 5, 8, ['shape', 'color']))).not.toBe(key(a));
    expect(key(trainingExamples(dataset, 1, 6, 8, ['shape', 'color']))).not.toBe(key(a));
  });

  it('says which questions cannot be asked', () => {
    const single = new ShapesDataset(fineDetailOptions({ shapesPerImage: 1 }));
    expect(() => exampleAt(single, 'test', 0, ['left-of'])).toThrow(/left-of.*cannot be asked/);
    expect(() => heldOutExamples(dataset, ['shape'], 0)).toThrow(/perType must be a positive integer, got 0/);
  });
});
