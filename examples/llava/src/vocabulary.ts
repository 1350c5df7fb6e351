// The word-level vocabulary of the shapes questions: four special tokens, then every word of every question and
// answer (the dataset's closed WORDS list). One token per word keeps sequences short, and every answer is one token.
import { WORDS, questionWords } from '@chimera-examples/shapes-dataset';

export const PAD = 0;
export const BOS = 1;
/** Ends every answer: greedy decoding stops on it, so exact match also checks that the model stops. */
export const EOS = 2;
/** The image placeholder: early fusion splices the projected image tokens where it stands. */
export const IMAGE = 3;

const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<image>'] as const;
const TOKENS: readonly string[] = [...SPECIAL_TOKENS, ...WORDS];
const IDS = new Map(TOKENS.map((token, id) => [token, id]));

export const VOCAB_SIZE = TOKENS.length;

/** Ids of a question or answer text ('what color is the square?' -> 5 ids, '?' being its own word). */
export function encodeWords(text: string): number[] {
  return questionWords(text).map((word) => {
    const id = IDS.get(word);
    if (id === undefined) {
      throw new Error(`encodeWords: '${word}' (in "${text}") is not a word of the shapes dataset; the vocabulary is its WORDS list`);
    }
    return id;
  });
}

/** Text of ids: words joined by spaces, special tokens in angle brackets, padding dropped. */
export function decodeWords(ids: readonly number[]): string {
  return ids
    .filter((id) => id !== PAD)
    .map((id) => {
      const token = TOKENS[id];
      if (token === undefined) throw new Error(`decodeWords: id ${id} is outside the vocabulary [0, ${VOCAB_SIZE})`);
      return token;
    })
    .join(' ')
    .replace(/ \?/g, '?');
}
