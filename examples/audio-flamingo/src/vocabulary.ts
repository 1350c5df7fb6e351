// The example's vocabulary: Flamingo's special tokens, then the sounds dataset's words (one token per word).
import { SoundVocabulary } from '@chimera-examples/sounds-dataset';

export const VOCABULARY = new SoundVocabulary(['<pad>', '<bos>', '<|endofchunk|>', '<audio>'], { padding: '<pad>' });

export const PAD = VOCABULARY.id('<pad>');
export const BOS = VOCABULARY.id('<bos>');
/** Flamingo's `<|endofchunk|>`: ends every answer, so greedy decoding knows where to stop. */
export const END_OF_CHUNK = VOCABULARY.id('<|endofchunk|>');
/** Stands where a clip sits in the text: a cross-attention marker, or the placeholder early fusion expands. */
export const AUDIO = VOCABULARY.id('<audio>');
export const VOCAB_SIZE = VOCABULARY.size;

export const encodeWords = (text: string): number[] => VOCABULARY.encode(text);
export const decodeIds = (ids: readonly number[]): string => VOCABULARY.decode(ids);
