// The sounds dataset's word-level vocabulary: shapes-dataset's WordVocabulary over this dataset's closed WORDS list,
// so every answer is one token.
import { WordVocabulary, type WordVocabularyOptions } from '@chimera-examples/shapes-dataset';
import { WORDS, questionWords } from './questions';

export type SoundVocabularyOptions = Omit<WordVocabularyOptions, 'words'>;

export class SoundVocabulary extends WordVocabulary {
  constructor(specialTokens: readonly string[], options: SoundVocabularyOptions = {}) {
    super(specialTokens, { ...options, words: { list: WORDS, split: questionWords, dataset: 'sounds' } });
  }
}
