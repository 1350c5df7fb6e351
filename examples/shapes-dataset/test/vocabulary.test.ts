import { describe, expect, it } from 'vitest';
import { WORDS, WordVocabulary, questionWords } from '../src/index';

describe('WordVocabulary', () => {
  const vocabulary = new WordVocabulary(['<pad>', '<bos>', '<eos>'], { padding: '<pad>' });

  it('puts the special tokens first, then every dataset word', () => {
    expect(vocabulary.size).toBe(3 + WORDS.length);
    expect([vocabulary.id('<pad>'), vocabulary.id('<bos>'), vocabulary.id('<eos>')]).toEqual([0, 1, 2]);
    expect(vocabulary.id(WORDS[0]!)).toBe(3);
    expect(vocabulary.tokens.slice(3)).toEqual(WORDS);
  });

  it('encodes one id per word and decodes back to the text', () => {
    const text = 'what color is the square?';
    const ids = vocabulary.encode(text);
    expect(ids).toHaveLength(questionWords(text).length); // '?' is a word of its own
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => id >= 3 && id < vocabulary.size)).toBe(true);
    expect(vocabulary.decode(ids)).toBe(text);
    expect(vocabulary.decode([0, 1, ...ids, 2, 0])).toBe(`<bos> ${text} <eos>`); // padding dropped
  });

  it('rejects unknown words, special tokens inside text, bad ids and clashing special tokens', () => {
    expect(() => vocabulary.encode('what colour is it?')).toThrow(/'colour'.*not a word/);
    expect(() => vocabulary.encode('<bos> red')).toThrow(/'<bos>'.*not a word/);
    expect(() => vocabulary.decode([vocabulary.size])).toThrow(/outside the vocabulary/);
    expect(() => vocabulary.id('<image>')).toThrow(/neither a special token/);
    expect(() => new WordVocabulary(['<pad>', 'red'])).toThrow(/'red'/);
    expect(() => new WordVocabulary(['<a>', '<a>'])).toThrow(/'<a>'/);
    expect(() => new WordVocabulary(['<a>'], { padding: '<pad>' })).toThrow(/padding '<pad>'/);
  });
});
