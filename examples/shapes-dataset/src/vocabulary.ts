// A word-level vocabulary of the questions and answers: the caller's special tokens, then every word of a closed
// word list (this dataset's WORDS unless another dataset passes its own). One token per word keeps sequences
// short, and every answer is one token.
import { WORDS, questionWords } from './questions';

export interface WordVocabularyOptions {
  /** The special token decode() drops (e.g. '<pad>'); none by default. */
  padding?: string;
  /** Another dataset's closed word list, its word splitter and its name for messages (default: this dataset's). */
  words?: { list: readonly string[]; split: (text: string) => string[]; dataset: string };
}

export class WordVocabulary {
  /** Special tokens first (ids 0, 1, ...), then the words in order. */
  readonly tokens: readonly string[];
  readonly specialTokens: readonly string[];
  private readonly ids: ReadonlyMap<string, number>;
  private readonly paddingId: number | undefined;
  private readonly words: NonNullable<WordVocabularyOptions['words']>;

  constructor(specialTokens: readonly string[], options: WordVocabularyOptions = {}) {
    this.words = options.words ?? { list: WORDS, split: questionWords, dataset: 'shapes' };
    const list = this.words.list;
    const clashes = specialTokens.filter((token, i) => list.includes(token) || specialTokens.indexOf(token) !== i);
    if (clashes.length) throw new Error(`WordVocabulary: special tokens must be distinct and not dataset words; got ${clashes.map((t) => `'${t}'`).join(', ')} twice or as a word`);
    this.specialTokens = [...specialTokens];
    this.tokens = [...specialTokens, ...list];
    this.ids = new Map(this.tokens.map((token, id) => [token, id]));
    if (options.padding !== undefined && !specialTokens.includes(options.padding)) {
      throw new Error(`WordVocabulary: padding '${options.padding}' is not one of the special tokens (${specialTokens.join(', ')})`);
    }
    this.paddingId = options.padding === undefined ? undefined : this.ids.get(options.padding);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** Id of a special token or a word. */
  id(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new Error(`WordVocabulary: '${token}' is neither a special token (${this.specialTokens.join(', ')}) nor a dataset word`);
    return id;
  }

  /** Ids of a question or answer text ('what color is the square?' -> 6 ids, '?' being its own word). */
  encode(text: string): number[] {
    return this.words.split(text).map((word) => {
      const id = this.ids.get(word);
      if (id === undefined || id < this.specialTokens.length) {
        throw new Error(`WordVocabulary.encode: '${word}' (in "${text}") is not a word of the ${this.words.dataset} dataset; the vocabulary is its WORDS list`);
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
        if (token === undefined) throw new Error(`WordVocabulary.decode: id ${id} is outside the vocabulary [0, ${this.size})`);
        return token;
      })
      .join(' ')
      .replace(/ \?/g, '?');
  }
}
