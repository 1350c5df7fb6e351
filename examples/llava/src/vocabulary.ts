// The example's vocabulary: four special tokens, then the shapes dataset's words (one token per word).
import { WordVocabulary } from '@chimera-examples/shapes-dataset';

export const VOCABULARY = new WordVocabulary(['<pad>', '<bos>', '<eos>', '<image>'], { padding: '<pad>' });

export const PAD = VOCABULARY.id('<pad>');
export const BOS = VOCABULARY.id('<bos>');
/** Ends every answer: greedy decoding stops on it, so exact match also checks that the model stops. */
export const EOS = VOCABULARY.id('<eos>');
/** The image placeholder: early fusion splices the projected image tokens where it stands. */
export const IMAGE = VOCABULARY.id('<image>');
export const VOCAB_SIZE = VOCABULARY.size;

export const encodeWords = (text: string): number[] => VOCABULARY.encode(text);
export const decodeWords = (ids: readonly number[]): string => VOCABULARY.decode(ids);
