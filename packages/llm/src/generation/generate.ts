/**
 * `generate`: autoregressive decoding for a CausalLM. Prompts of different lengths are left-padded with a padding
 * mask (positions start at each row's first real token), the prompt is prefilled once, then one token per step is
 * decoded with the KV cache. Greedy or sampled (temperature, top-k, top-p, min-p, repetition penalty from
 * @chimera/core), stop tokens and stop sequences, maxNewTokens / maxLength; finished rows emit padding until the
 * batch is done. Prompt embeddings (multimodal prefixes) work too, with positions, attention bias, token
 * modalities and a block context passed to the prefill.
 *
 *   const { tokens, finishReasons } = await generate(model, [[1, 5, 9], [1, 7]], { maxNewTokens: 20 });
 *   const sampled = await generate(model, prompts, { maxNewTokens: 20, temperature: 0.8, topP: 0.95, seed: 1 });
 */
import type { CausalLM } from '../model/causal-lm';
import type { GenerationPrompts } from './batch-prompts';
import type { GenerateOptions, GenerationResult } from './options';
import { streamGenerate } from './streaming';

/** Runs generation to the end (calling `options.onToken` after each step) and returns every row's tokens. */
export async function generate(model: CausalLM, prompts: GenerationPrompts, options: GenerateOptions = {}): Promise<GenerationResult> {
  const stream = streamGenerate(model, prompts, options);
  for (;;) {
    const next = await stream.next();
    if (next.done) return next.value;
  }
}
