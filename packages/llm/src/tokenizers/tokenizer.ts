// The contract every Chimera text tokenizer implements (byte-level, HF tokenizer.json), plus shared id checks.
import type { ChatMessage, TokenizerChatOptions } from './chat-template';

/** Options of {@link TextTokenizer.encode}. */
export interface EncodeOptions {
  /** Add the tokens the tokenizer wraps a text in (BOS and/or EOS). Default true, as in HF tokenizers. */
  addSpecialTokens?: boolean;
}

/** Options of {@link TextTokenizer.decode}. */
export interface DecodeOptions {
  /** Leave special tokens (BOS, EOS, pad, media markers) out of the text. Default false. */
  skipSpecialTokens?: boolean;
}

/** Options of {@link TextTokenizer.addTokens}. */
export interface AddTokensOptions {
  /** Mark the tokens special: `skipSpecialTokens` drops them when decoding. Default false. */
  special?: boolean;
}

/**
 * The interface every Chimera text tokenizer implements ({@link ByteTokenizer}, {@link HFTokenizer}): encode, decode,
 * special tokens, added tokens and chat templates.
 */
export interface TextTokenizer {
  /** One past the largest id: the number of rows the model's embedding table needs. */
  readonly vocabSize: number;
  /** Beginning-of-sequence token string, if the tokenizer has one. */
  readonly bosToken: string | undefined;
  /** End-of-sequence token string, if any. */
  readonly eosToken: string | undefined;
  /** Padding token string, if any. */
  readonly padToken: string | undefined;
  /** Id of the BOS token, if any. */
  readonly bosTokenId: number | undefined;
  /** Id of the EOS token, if any. */
  readonly eosTokenId: number | undefined;
  /** Id of the padding token, if any. */
  readonly padTokenId: number | undefined;
  /** Every special token, content -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** The default chat template (Jinja), when the tokenizer has one. */
  readonly chatTemplate: string | undefined;

  /** Text -> ids. Special and added tokens written in the text are matched as whole tokens. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids -> text. Throws for ids outside [0, vocabSize). */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /**
   * The id of a token string (vocabulary entry or added token), or undefined when it has none; use it for placeholder
   * ids such as `<image>`.
   */
  tokenToId(token: string): number | undefined;
  /** The token string of an id, or undefined outside the vocabulary. */
  idToToken(id: number): string | undefined;
  /**
   * Adds tokens to the vocabulary and returns their ids, in the order given. New tokens get ids from the current
   * vocabSize up; a token already present keeps its id. Resize the model afterwards (see addTokensToModel).
   */
  addTokens(tokens: readonly string[], options?: AddTokensOptions): number[];
  /** Renders `messages` with the chat template and encodes the result (the template places BOS itself). */
  applyChatTemplate(messages: readonly ChatMessage[], options?: TokenizerChatOptions): number[];
}

/** Throws a precise error unless every id is an integer in [0, vocabSize). */
export function assertTokenIds(ids: ArrayLike<number>, vocabSize: number, who: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(
        `${who}: id ${id} at position ${i} is outside the vocabulary [0, ${vocabSize}); ` +
          'decode ids produced by this tokenizer, or by a model whose vocabulary matches it',
      );
    }
  }
}

/** Throws unless `tokens` is an array of non-empty strings. */
export function assertTokenStrings(tokens: readonly string[], who: string): void {
  if (!Array.isArray(tokens)) {
    throw new Error(`${who}: expected an array of token strings, got ${typeof tokens}`);
  }
  tokens.forEach((token, i) => {
    if (typeof token !== 'string' || token.length === 0) {
      throw new Error(`${who}: token ${i} must be a non-empty string, got ${JSON.stringify(token)}`);
    }
  });
}
