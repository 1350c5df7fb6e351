// The example's vocabulary: Flamingo's special tokens, then the shapes dataset's words (one token per word).
import { WordVocabulary } from '@chimera-examples/shapes-dataset';

export const VOCABULARY = new WordVocabulary(['<pad>', '<bos>', '<|endofchunk|>', '<image>'], { padding: '<pad>' });

export const PAD = VOCABULARY.id('<pad>');
export const BOS = VOCABULARY.id('<bos>');
/** Flamingo's `<|endofchunk|>`: ends every answer, so greedy decoding knows where to stop. */
export const END_OF_CHUNK = VOCABULARY.id('<|endofchunk|>');
/** Flamingo's `<image>`: stands where an image sits in the interleaved text. */
export const IMAGE = VOCABULARY.id('<image>');
export const VOCAB_SIZE = VOCABULARY.size;

export const encodeWords = (text: string): number[] => VOCABULARY.encode(text);
export const decodeIds = (ids: readonly number[]): string => VOCABULARY.decode(ids);
