/**
 * Generation benchmark: tokens/s of @chimera/llm's `generate` with the KV cache vs full recomputation of the
 * whole sequence every step, at prompt contexts of 64, 256 and 1024 tokens, on the default backend
 * (initBackend(): tensorflow if installed, else wasm, else cpu). A small Llama: width 256, 4 layers, 4 heads over
 * 2 KV heads, vocab 512. Both runs use the same model and prompt; their greedy tokens must agree.
 *
 *   npm run build                        # once: the bench imports the built @chimera/core and @chimera/llm
 *   npx vite-node bench/generation.ts    # optional: --backend cpu|wasm, --quick (fewer new tokens)
 *
 * Prints a table and writes bench/results/generation.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, manualSeed, type BackendName } from '@chimera/core';
import { CausalLM, generate, llamaConfig } from '@chimera/llm';

const args = process.argv.slice(2);
const backendArg = args.includes('--backend') ? (args[args.indexOf('--backend') + 1] as BackendName) : undefined;
const quick = args.includes('--quick');

/** Context -> new tokens: fewer at long contexts, where each recomputed step re-runs the whole prompt. */
const CASES: { context: number; newTokens: number }[] = [
  { context: 64, newTokens: quick ? 8 : 32 },
  { context: 256, newTokens: quick ? 4 : 16 },
  { context: 1024, newTokens: quick ? 2 : 6 },
];

interface Timing {
  /** Wall time of the whole call, prefill included (ms). */
  totalMs: number;
  /** Time to the first token: the prompt's forward pass (ms). */
  firstTokenMs: number;
  /** New tokens per second over the whole call. */
  tokensPerSecond: number;
  /** New tokens per second after the first one (decoding only). */
  decodeTokensPerSecond: number;
  tokens: number[];
}

async function timeGenerate(model: CausalLM, prompt: number[], newTokens: number, useCache: boolean): Promise<Timing> {
  const start = performance.now();
  let firstToken = 0;
  const result = await generate(model, [prompt], {
    maxNewTokens: newTokens,
    eosTokenId: null,
    useCache,
    onToken: (step) => {
      if (step.step === 0) firstToken = performance.now();
    },
  });
  const end = performance.now();
  return {
    totalMs: end - start,
    firstTokenMs: firstToken - start,
    tokensPerSecond: (newTokens * 1000) / (end - start),
    decodeTokensPerSecond: newTokens > 1 ? ((newTokens - 1) * 1000) / (end - firstToken) : NaN,
    tokens: result.tokens[0]!,
  };
}

async function main(): Promise<void> {
  const report = await initBackend(backendArg ? { backend: backendArg } : {});
  manualSeed(0);
  const config = llamaConfig({
    vocabSize: 512,
    hiddenSize: 256,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 688,
    maxPositionEmbeddings: 2048,
  });
  const model = new CausalLM(config);
  const promptOf = (n: number) => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % config.vocabSize);
  console.log(`backend: ${report.backend} | model: width 256, 4 layers, 4 heads / 2 KV heads, vocab 512, batch 1`);
  await timeGenerate(model, promptOf(16), 4, true); // warm-up: kernel setup and first-use costs
  await timeGenerate(model, promptOf(16), 4, false);

  const rows = [];
  for (const { context, newTokens } of CASES) {
    const prompt = promptOf(context);
    const cached = await timeGenerate(model, prompt, newTokens, true);
    const recomputed = await timeGenerate(model, prompt, newTokens, false);
    const sameTokens = cached.tokens.join() === recomputed.tokens.join();
    rows.push({
      context,
      newTokens,
      cached,
      recomputed,
      sameTokens,
      speedup: cached.tokensPerSecond / recomputed.tokensPerSecond,
      decodeSpeedup: cached.decodeTokensPerSecond / recomputed.decodeTokensPerSecond,
    });
  }
  model.dispose();

  const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
  const header = ['context', 'new', 'cache tok/s', 'recompute tok/s', 'speed-up', 'decode cache tok/s', 'decode recompute tok/s', 'decode speed-up', 'same tokens'];
  const table = rows.map((r) => [
    String(r.context),
    String(r.newTokens),
    fmt(r.cached.tokensPerSecond),
    fmt(r.recomputed.tokensPerSecond),
    `${fmt(r.speedup)}x`,
    fmt(r.cached.decodeTokensPerSecond),
    fmt(r.recomputed.decodeTokensPerSecond),
    `${fmt(r.decodeSpeedup)}x`,
    r.sameTokens ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of table) console.log(line(row));
  console.log('speed-up: whole call (prefill included); decode speed-up: tokens after the first.');

  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'generation.json');
  mkdirSync(dirname(out), { recursive: true });
  const results = {
    benchmark: 'generation',
    date: new Date().toISOString(),
    backend: report.backend,
    node: process.version,
    config,
    batch: 1,
    rows: rows.map(({ cached, recomputed, ...rest }) => ({
      ...rest,
      cached: { ...cached, tokens: undefined },
      recomputed: { ...recomputed, tokens: undefined },
    })),
  };
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${out}`);
  if (rows.some((r) => !r.sameTokens)) process.exitCode = 1;
}

await main();
