// A word-level vocabulary of the questions and answers: the caller's special tokens, then every word of the closed
// WORDS list, so every answer is one token (the shapes dataset's WordVocabulary, over this dataset's words).
import { WORDS, questionWords } from './questions';

export interface SoundVocabularyOptions {
  /** The special token decode() drops (e.g. '<pad>'); none by default. */
  padding?: string;
}

export class SoundVocabulary {
  /** Special tokens first (ids 0, 1, ...), then WORDS in order. */
  readonly tokens: readonly string[];
  readonly specialTokens: readonly string[];
  private readonly ids: ReadonlyMap<string, number>;
  private readonly paddingId: number | undefined;

  constructor(specialTokens: readonly string[], options: SoundVocabularyOptions = {}) {
    const clashes = specialTokens.filter((token, i) => WORDS.includes(token) || specialTokens.indexOf(token) !== i);
    if (clashes.length) throw new Error(`SoundVocabulary: special tokens must be distinct and not dataset words; got ${clashes.map((t) => `'${t}'`).join(', ')} twice or as a word`);
    this.specialTokens = [...specialTokens];
    this.tokens = [...specialTokens, ...WORDS];
    this.ids = new Map(this.tokens.map((token, id) => [token, id]));
    if (options.padding !== undefined && !specialTokens.includes(options.padding)) {
      throw new Error(`SoundVocabulary: padding '${options.padding}' is not one of the special tokens (${specialTokens.join(', ')})`);
    }
    this.paddingId = options.padding === undefined ? undefined : this.ids.get(options.padding);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** Id of a special token or a word. */
  id(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new Error(`SoundVocabulary: '${token}' is neither a special token (${this.specialTokens.join(', ')}) nor a dataset word`);
    return id;
  }

  /** Ids of a question or answer text, one per word ('?' is a word). */
  encode(text: string): number[] {
    return questionWords(text).map((word) => {
      const id = this.ids.get(word);
      if (id === undefined || id < this.specialTokens.length) {
        throw new Error(`SoundVocabulary.encode: '${word}' (in "${text}") is not a word of the sounds dataset; the vocabulary is its WORDS list`);
      }
      return id;
    });
  }

  /** Text of ids: tokens joined by spaces with '?' attached to the word before it, the padding dropped. */
  decode(ids: readonly number[]): string {
    return ids
      .filter((id) => id !== this.paddingId)
      .map((id) => {
        const token = this.tokens[id];
        if (token === undefined) throw new Error(`SoundVocabulary.decode: id ${id} is outside the vocabulary [0, ${this.size})`);
        return token;
      })
      .join(' ')
      .replace(/ \?/g, '?');
  }
}
