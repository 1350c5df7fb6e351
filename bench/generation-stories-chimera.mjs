/**
 * The Chimera side of bench/generation-stories.ts, run by it in a plain Node process: the built packages load the
 * way an application loads them. (Under vite-node, which runs the .ts benchmarks, every `tf.*` access inside the
 * built packages goes through vite-node's module interop; on this op-bound decode loop that costs ~15% of a step.)
 *
 *   node bench/generation-stories-chimera.mjs --new-tokens 256 --prompt 8 [--rounds 2] [--backend wasm]
 *
 * Generates greedily with the KV cache from a stories15M-shaped Llama (random weights), tied and untied heads
 * alternating, and prints one JSON line: per head, each call's tokens/s (whole call and decode steps only).
 */
import { initBackend, manualSeed } from '@chimera/core';
import { CausalLM, generate, llamaConfig } from '@chimera/llm';

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const newTokens = Number(option('new-tokens', 256));
const promptLength = Number(option('prompt', 8));
const rounds = Number(option('rounds', 2));
const backend = option('backend', undefined);

/** stories15M's params (llama2.c's ModelArgs for the 15M checkpoint); the position limit only has to fit the run. */
const storiesConfig = (tied) =>
  llamaConfig({
    vocabSize: 32000,
    hiddenSize: 288,
    numLayers: 6,
    numHeads: 6,
    numKvHeads: 6,
    intermediateSize: 768,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: tied,
  });

async function timeGenerate(model, prompt, count) {
  const start = performance.now();
  let first = 0;
  const result = await generate(model, [prompt], {
    maxNewTokens: count,
    eosTokenId: null,
    onToken: (step) => {
      if (step.step === 0) first = performance.now();
    },
  });
  const end = performance.now();
  if (result.tokens[0].length !== count) throw new Error(`expected ${count} new tokens, got ${result.tokens[0].length}`);
  return {
    tokensPerSecond: (count * 1000) / (end - start),
    decodeTokensPerSecond: ((count - 1) * 1000) / (end - first),
    firstTokenMs: first - start,
  };
}

const report = await initBackend(backend ? { backend } : {});
manualSeed(0);
const models = { tied: new CausalLM(storiesConfig(true)), untied: new CausalLM(storiesConfig(false)) };
const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919 + 13) % 32000);
// Warm-up: kernel setup, XNNPACK's weight packing, the tied head's transposed copy.
for (const model of Object.values(models)) await timeGenerate(model, prompt, 4);
const runs = { tied: [], untied: [] };
for (let round = 0; round < rounds; round++) {
  for (const head of ['tied', 'untied']) runs[head].push(await timeGenerate(models[head], prompt, newTokens));
}
for (const model of Object.values(models)) model.dispose();
console.log(JSON.stringify({ backend: report.backend, node: process.version, newTokens, promptLength, runs }));
