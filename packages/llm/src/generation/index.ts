// Generation: generate / streamGenerate over a CausalLM, with left-padded batches and a KV cache.
export { generate } from './generate';
export { streamGenerate } from './streaming';
export {
  type GenerateOptions,
  type GenerationResult,
  type GenerationStep,
  type FinishReason,
} from './options';
export { type GenerationPrompts, type EmbeddedPrompts } from './batch-prompts';
