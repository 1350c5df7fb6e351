// Text tokenizers: the common interface, byte-level and HF tokenizers, chat templates, special tokens, streaming.
export { type TextTokenizer, type EncodeOptions, type DecodeOptions, type AddTokensOptions } from './tokenizer';
export { ByteTokenizer, BYTE_VOCAB_SIZE, type ByteTokenizerOptions } from './byte-tokenizer';
export { writeTokenizerFiles, type HFTokenizerFiles } from './tokenizer-files';
export { HFTokenizer, type HFTokenizerOptions } from './hf-tokenizer';
export {
  applyChatTemplate,
  type ChatMessage,
  type ChatContentPart,
  type ChatTemplateOptions,
  type TokenizerChatOptions,
} from './chat-template';
export {
  SpecialTokenRegistry,
  STANDARD_SPECIAL_TOKENS,
  type SpecialTokenRole,
  type StandardSpecialTokenRole,
  type SpecialTokenDefinition,
} from './special-tokens';
export { StreamDecoder } from './stream-decoder';
export { addTokensToModel, type TokenResizableModel, type AddTokensToModelOptions } from './add-tokens';
