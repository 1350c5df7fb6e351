// The VQA examples' vocabulary: four special tokens, then the shapes dataset's words (one token per word, so every
// answer is one token).
import { WordVocabulary } from '@chimera-examples/shapes-dataset';

export const VOCABULARY = new WordVocabulary(['<pad>', '<bos>', '<eos>', '<image>'], { padding: '<pad>' });

export const PAD = VOCABULARY.id('<pad>');
export const BOS = VOCABULARY.id('<bos>');
/** Ends every answer: greedy decoding stops on it, so exact match also checks that the model stops. */
export const EOS = VOCABULARY.id('<eos>');
/** The image placeholder id, for models given token samples (parts samples place the image themselves). */
export const IMAGE = VOCABULARY.id('<image>');
export const VOCAB_SIZE = VOCABULARY.size;

export const encodeWords = (text: string): number[] => VOCABULARY.encode(text);
export const decodeWords = (ids: readonly number[]): string => VOCABULARY.decode(ids);
