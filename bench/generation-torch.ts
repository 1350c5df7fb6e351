/**
 * Generation against PyTorch: the KV-cache rows of bench/generation.ts (run it first; `npm run bench` does) next
 * to the same model shape, prompt lengths and new-token counts generated greedily by PyTorch with a preallocated
 * cache (bench/torch/generate.py), on 1 and 2 threads.
 *
 *   npx vite-node bench/generation.ts && npx vite-node bench/generation-torch.ts
 *
 * Prints a table and writes bench/results/generation-torch.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, TORCH_MISSING, fixed, markdownTable, runTorch, torchRuns, writeResults } from './common';

interface GenerationResults {
  date: string;
  backend: string;
  config: { vocabSize: number; hiddenSize: number; numLayers: number; numHeads: number; numKvHeads: number; intermediateSize: number };
  rows: { context: number; newTokens: number; cached: { tokensPerSecond: number; decodeTokensPerSecond: number } }[];
}

interface TorchGeneration {
  cases: { context: number; new_tokens: number; tokens_per_second: number; decode_tokens_per_second: number | null }[];
}

function main(): void {
  const source = join(BENCH_DIR, 'results', 'generation.json');
  if (!existsSync(source)) {
    console.log(`no ${source}: run npx vite-node bench/generation.ts first`);
    process.exitCode = 1;
    return;
  }
  const chimera = JSON.parse(readFileSync(source, 'utf8')) as GenerationResults;
  const { config } = chimera;
  const modelArgs = [
    '--vocab', config.vocabSize, '--hidden', config.hiddenSize, '--layers', config.numLayers, '--heads', config.numHeads,
    '--kv-heads', config.numKvHeads, '--intermediate', config.intermediateSize,
  ];
  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  let missing = false;
  const cases = chimera.rows.map((row) => `${row.context}:${row.newTokens}`).join(',');
  for (const run of torchRuns()) {
    for (const threads of [1, 2]) {
      const torch = runTorch<TorchGeneration>('generate.py', [...modelArgs, '--cases', cases, '--threads', threads], run.env);
      if (!torch) {
        missing = true;
        continue;
      }
      chimera.rows.forEach((row, i) => {
        const t = torch.cases[i]!;
        const ratio = row.cached.tokensPerSecond / t.tokens_per_second;
        const decodeRatio = t.decode_tokens_per_second ? row.cached.decodeTokensPerSecond / t.decode_tokens_per_second : NaN;
        rows.push([
          String(row.context), String(row.newTokens), run.label, String(threads),
          fixed(row.cached.tokensPerSecond), fixed(t.tokens_per_second), `${fixed(ratio, 2)}x`,
          fixed(row.cached.decodeTokensPerSecond), fixed(t.decode_tokens_per_second), `${fixed(decodeRatio, 2)}x`,
        ]);
        results.push({ context: row.context, newTokens: row.newTokens, openblas: run.label, threads, chimera: row.cached, torch: t, ratio, decodeRatio });
      });
    }
  }
  if (missing) {
    console.log(TORCH_MISSING);
  } else {
    console.log(`Generation with a KV cache, batch 1, greedy: Chimera (${chimera.backend}, from bench/generation.ts at ${chimera.date}) vs PyTorch`);
    console.log(
      markdownTable(
        ['context', 'new', 'OpenBLAS', 'torch threads', 'Chimera tok/s', 'torch tok/s', 'ratio', 'Chimera decode tok/s', 'torch decode tok/s', 'decode ratio'],
        rows,
      ),
    );
    console.log('tok/s: new tokens over the whole call (prefill included); decode: tokens after the first. Chimera: one call;');
    console.log('torch: best of 2 calls (favours torch). Ratio: Chimera over torch.');
  }
  console.log(`wrote ${writeResults('generation-torch', { chimeraBackend: chimera.backend, chimeraDate: chimera.date, torchMissing: missing, rows: results })}`);
}

main();
