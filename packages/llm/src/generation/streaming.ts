/**
 * Streaming generation: `streamGenerate` yields every decoding step (each row's new token and, with a tokenizer,
 * its text delta) as soon as it is sampled. The run's KV cache is freed when the stream ends, when a step or the
 * onToken callback throws, and when the consumer leaves early (`break` out of `for await` calls the generator's
 * return(), which runs its `finally`). A stream that is started and then neither finished nor closed keeps its
 * cache until it is: iterate it to the end, break out of it, or call `stream.return()`.
 *
 *   for await (const step of streamGenerate(model, [ids], { maxNewTokens: 32, tokenizer })) {
 *     process.stdout.write(step.text![0]!);
 *   }
 */
import type { CausalLM } from '../model/causal-lm';
import type { GenerationPrompts } from './batch-prompts';
import { DecodingRun } from './decoding-run';
import { planGeneration, type GenerateOptions, type GenerationPlan, type GenerationResult, type GenerationStep } from './options';

/**
 * Generates from `prompts` one step at a time. The call checks its arguments at once (a bad prompt or option
 * throws here, before any tensor exists); the model runs as the stream is consumed. The generator's return
 * value (what a final `next()` gives) is the GenerationResult.
 */
export function streamGenerate(
  model: CausalLM,
  prompts: GenerationPrompts,
  options: GenerateOptions = {},
): AsyncGenerator<GenerationStep, GenerationResult, undefined> {
  return runSteps(planGeneration(model, prompts, options));
}

async function* runSteps(plan: GenerationPlan): AsyncGenerator<GenerationStep, GenerationResult, undefined> {
  const run = new DecodingRun(plan);
  try {
    while (!run.done) {
      const step = await run.next();
      if (plan.onToken) await plan.onToken(step);
      yield step;
    }
    return run.result();
  } finally {
    run.dispose();
  }
}
