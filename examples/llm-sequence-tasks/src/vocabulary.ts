// The shared token vocabulary of the synthetic tasks: one token per character, plus padding and end-of-answer.
export const PAD = 0;
/** Ends every answer, so greedy decoding knows where to stop and exact match includes stopping on time. */
export const EOS = 1;

const SYMBOLS = ['<pad>', '<eos>', '=', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ...'abcdefghijklmnop'];
const IDS = new Map(SYMBOLS.map((symbol, id) => [symbol, id]));

export const VOCAB_SIZE = SYMBOLS.length;
/** The letters reversal can draw from ('a' .. 'p'). */
export const MAX_LETTERS = 16;

/** Ids of a string of single-character symbols, e.g. 'abc=' -> [14, 15, 16, 2]. */
export function encode(text: string): number[] {
  return [...text].map((char) => {
    const id = IDS.get(char);
    if (id === undefined) throw new Error(`encode: '${char}' is not in the vocabulary (${SYMBOLS.slice(2).join('')})`);
    return id;
  });
}

/** Text of ids; '<eos>' is written as '$' and padding is dropped. */
export function decode(ids: readonly number[]): string {
  return ids
    .filter((id) => id !== PAD)
    .map((id) => {
      if (id === EOS) return '$';
      const symbol = SYMBOLS[id];
      if (symbol === undefined) throw new Error(`decode: id ${id} is outside the vocabulary [0, ${VOCAB_SIZE})`);
      return symbol;
    })
    .join('');
}

/** The token of digit d (0-9). */
export function digitToken(d: number): number {
  return IDS.get(String(d))!;
}

/** The token of the i-th letter (0 -> 'a'). */
export function letterToken(i: number): number {
  if (!(Number.isInteger(i) && i >= 0 && i < MAX_LETTERS)) throw new Error(`letterToken: index must be in [0, ${MAX_LETTERS}), got ${i}`);
  return IDS.get(String.fromCharCode(97 + i))!;
}
