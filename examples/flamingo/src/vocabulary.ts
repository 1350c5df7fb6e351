// The word-level vocabulary of the example: the dataset's closed word list plus Flamingo's special tokens.
import { WORDS, questionWords } from '@chimera-examples/shapes-dataset';

export const PAD = 0;
export const BOS = 1;
/** Flamingo's `<|endofchunk|>`: ends every answer, so greedy decoding knows where to stop. */
export const END_OF_CHUNK = 2;
/** Flamingo's `<image>`: stands where an image sits in the interleaved text. */
export const IMAGE = 3;

const SPECIAL = ['<pad>', '<bos>', '<|endofchunk|>', '<image>'] as const;
const TOKENS: readonly string[] = [...SPECIAL, ...WORDS];
const IDS = new Map(TOKENS.map((token, id) => [token, id]));

export const VOCAB_SIZE = TOKENS.length;

/** Ids of a question or answer ("what color is the square?" -> what, color, is, the, square, ?). */
export function encodeWords(text: string): number[] {
  return questionWords(text).map((word) => {
    const id = IDS.get(word);
    if (id === undefined) throw new Error(`encodeWords: '${word}' is not in the dataset's word list; only questions and answers of ShapesDataset can be encoded`);
    return id;
  });
}

/** Text of ids, words separated by spaces (special tokens written as themselves, padding dropped). */
export function decodeIds(ids: readonly number[]): string {
  return ids
    .filter((id) => id !== PAD)
    .map((id) => {
      const token = TOKENS[id];
      if (token === undefined) throw new Error(`decodeIds: id ${id} is outside the vocabulary [0, ${VOCAB_SIZE})`);
      return token;
    })
    .join(' ');
}

