// Adds tokens to a tokenizer and grows the model's embedding and LM head to match; the model initialises the new
// rows at the mean of the old ones plus small noise (Hewitt 2021, "Initializing new word embeddings for pretrained
// language models").
import type { TextTokenizer } from './tokenizer';

/** What addTokensToModel needs from a model (the Chimera LLM has it; typed structurally to stay decoupled). */
export interface TokenResizableModel {
  /** Grows (or shrinks) the input embeddings and the LM head to `newVocabSize` rows. */
  resizeTokenEmbeddings(newVocabSize: number): void;
  /** The model's config; only vocabSize is read. */
  readonly config: { readonly vocabSize: number };
}

/** Options of {@link addTokensToModel}. */
export interface AddTokensToModelOptions {
  /** Add the tokens as special tokens (media markers usually are). Default true. */
  special?: boolean;
}

/**
 * Adds `tokens` to `tokenizer` and, when the tokenizer's vocabulary no longer fits the model's, resizes the model's
 * token embeddings (and LM head) to `tokenizer.vocabSize`. The model never shrinks: a model whose vocabulary is
 * padded past the tokenizer's (Qwen2 does this) already has rows for the new ids. Returns the tokens' ids.
 */
export function addTokensToModel(
  tokenizer: TextTokenizer,
  model: TokenResizableModel,
  tokens: readonly string[],
  options: AddTokensToModelOptions = {},
): number[] {
  const ids = tokenizer.addTokens(tokens, { special: options.special ?? true });
  const needed = tokenizer.vocabSize;
  if (needed > model.config.vocabSize) {
    model.resizeTokenEmbeddings(needed);
    if (model.config.vocabSize !== needed) {
      throw new Error(
        `addTokensToModel: model.resizeTokenEmbeddings(${needed}) left config.vocabSize at ${model.config.vocabSize}; ` +
          'the model must update its config when it resizes',
      );
    }
  }
  return ids;
}
