/**
 * Generation on a stories15M-shaped Llama (Karpathy's llama2.c TinyStories model: vocab 32000, width 288, 6 layers,
 * 6 heads, SwiGLU 768, RMSNorm eps 1e-5, tied embeddings), random weights, batch 1, greedy, an 8-token prompt and 256
 * new tokens with the KV cache: Chimera's tied and untied heads, then the same two models in PyTorch with a
 * preallocated KV cache on 1 thread (bench/torch/generate.py --tied 1|0), one after the other in this run.
 *
 *   npx vite-node bench/generation-stories.ts            # optional: --backend cpu|wasm, --quick (32 new tokens)
 *   npx vite-node bench/generation-stories.ts --profile  # also: per-kernel CPU time of 32 tied decode steps
 *
 * Chimera generates in a plain Node child process (bench/generation-stories-chimera.mjs: the packages load as an
 * application loads them, not through vite-node's module interop), PyTorch in python processes; on each side the
 * best of 2 calls per head, tied and untied alternating. Prints a table and writes bench/results/generation-stories.json.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { initBackend, manualSeed, tf, type KVCache } from '@chimera/core';
import { CausalLM, llamaConfig } from '@chimera/llm';
import { BENCH_DIR, TORCH_MISSING, fixed, flag, markdownTable, option, runTorch, writeResults } from './common';
import { profileKernels } from './kernel-profile';

const NEW_TOKENS = flag('quick') ? 32 : 256;
const PROMPT_LENGTH = 8;
const HEADS = ['tied', 'untied'] as const;

/** The config of bench/generation-stories-chimera.mjs (stories15M's params), for the PyTorch twin and --profile. */
const STORIES = { vocabSize: 32000, hiddenSize: 288, numLayers: 6, numHeads: 6, numKvHeads: 6, intermediateSize: 768, rmsNormEps: 1e-5 };

interface Timing {
  tokensPerSecond: number;
  decodeTokensPerSecond: number;
  firstTokenMs: number;
}

interface ChimeraRuns {
  backend: string;
  runs: Record<(typeof HEADS)[number], Timing[]>;
}

interface TorchGeneration {
  cases: { context: number; new_tokens: number; tokens_per_second: number; decode_tokens_per_second: number | null }[];
}

const best = (runs: Timing[]): Timing => runs.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));

function runChimera(): ChimeraRuns {
  const backend = option('backend');
  const out = execFileSync(
    process.execPath,
    [join(BENCH_DIR, 'generation-stories-chimera.mjs'), '--new-tokens', String(NEW_TOKENS), '--prompt', String(PROMPT_LENGTH), ...(backend ? ['--backend', backend] : [])],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  return JSON.parse(out.trim().split('\n').at(-1)!) as ChimeraRuns;
}

/** Per-kernel CPU time of `steps` tied decode steps after an 8-token prefill (in this process, for --profile). */
async function profileDecode(steps: number): Promise<void> {
  const backend = option('backend');
  await initBackend(backend ? { backend: backend as 'wasm' | 'cpu' } : {});
  manualSeed(0);
  const model = new CausalLM(llamaConfig({ ...STORIES, maxPositionEmbeddings: 512, tieWordEmbeddings: true }));
  const cache: KVCache = model.createCache(1);
  const forwardIds = (ids: number[]) =>
    tf.tidy(() => {
      const logits = model.forward({ inputIds: tf.tensor2d([ids], [1, ids.length], 'int32'), cache }, { lastLogitsOnly: true, heads: false }).logits;
      return tf.argMax(tf.reshape(logits, [-1]));
    });
  const next = (ids: number[]) => {
    const id = forwardIds(ids);
    const token = id.dataSync()[0]!;
    id.dispose();
    return token;
  };
  let token = next(Array.from({ length: PROMPT_LENGTH }, (_, i) => i + 1));
  for (let i = 0; i < 4; i++) token = next([token]); // warm-up
  const profile = profileKernels(() => {
    for (let i = 0; i < steps; i++) token = next([token]);
  });
  cache.dispose();
  model.dispose();
  const calls = profile.kernels.reduce((sum, k) => sum + k.calls, 0);
  console.log(
    `\nprofile of ${steps} tied decode steps (vite-node, profiler on): ${fixed(profile.wallMs / steps, 2)} ms/step wall, ` +
      `${fixed(profile.cpuMs / steps, 2)} ms CPU, ${fixed(profile.kernelMs / steps, 2)} ms in kernels, ` +
      `${fixed((profile.cpuMs - profile.kernelMs) / steps, 2)} ms outside; ${fixed(calls / steps, 0)} kernel calls per step`,
  );
  console.log(
    markdownTable(
      ['kernel', 'ms/step', 'calls/step', 'share of CPU'],
      profile.kernels.slice(0, 15).map((k) => [k.name, fixed(k.ms / steps, 3), fixed(k.calls / steps, 1), `${fixed((100 * k.ms) / profile.cpuMs, 0)}%`]),
    ),
  );
}

async function main(): Promise<void> {
  const chimera = runChimera();
  const torchArgs = (head: (typeof HEADS)[number]) => [
    '--vocab', STORIES.vocabSize, '--hidden', STORIES.hiddenSize, '--layers', STORIES.numLayers, '--heads', STORIES.numHeads,
    '--kv-heads', STORIES.numKvHeads, '--intermediate', STORIES.intermediateSize, '--eps', STORIES.rmsNormEps,
    '--tied', head === 'tied' ? 1 : 0, '--cases', `${PROMPT_LENGTH}:${NEW_TOKENS}`, '--repeats', 1, '--threads', 1,
  ];
  // Like Chimera's side: tied and untied alternating, one timed call each per round, the best of 2 rounds per head.
  const torchCalls: Record<(typeof HEADS)[number], TorchGeneration['cases'][number][]> = { tied: [], untied: [] };
  let torchMissing = false;
  for (let round = 0; round < 2 && !torchMissing; round++) {
    for (const head of HEADS) {
      const result = runTorch<TorchGeneration>('generate.py', torchArgs(head));
      if (!result) torchMissing = true;
      else torchCalls[head].push(result.cases[0]!);
    }
  }
  const torchBest = (head: (typeof HEADS)[number]) =>
    torchMissing ? null : torchCalls[head].reduce((a, b) => (b.tokens_per_second > a.tokens_per_second ? b : a));

  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  for (const head of HEADS) {
    const ours = best(chimera.runs[head]);
    const t = torchBest(head);
    const ratio = t ? ours.tokensPerSecond / t.tokens_per_second : NaN;
    const decodeRatio = t?.decode_tokens_per_second ? ours.decodeTokensPerSecond / t.decode_tokens_per_second : NaN;
    rows.push([
      head, fixed(ours.tokensPerSecond), fixed(ours.decodeTokensPerSecond), fixed(ours.firstTokenMs),
      fixed(t?.tokens_per_second), fixed(t?.decode_tokens_per_second), `${fixed(ratio, 2)}x`, `${fixed(decodeRatio, 2)}x`,
    ]);
    results.push({
      head, chimera: ours, chimeraCalls: chimera.runs[head].map((r) => r.tokensPerSecond), torch: t,
      torchCalls: torchCalls[head].map((c) => c.tokens_per_second), ratio, decodeRatio,
    });
  }
  const tiedOverUntied = best(chimera.runs.tied).tokensPerSecond / best(chimera.runs.untied).tokensPerSecond;
  console.log(
    `Generation, stories15M shape (vocab 32000, width 288, 6 layers, 6 heads, SwiGLU 768), random weights, batch 1, greedy, ` +
      `${PROMPT_LENGTH}-token prompt, ${NEW_TOKENS} new tokens, KV cache. Chimera: ${chimera.backend}, plain Node; torch: 1 thread`,
  );
  console.log(
    markdownTable(['head', 'Chimera tok/s', 'Chimera decode tok/s', 'first token ms', 'torch tok/s', 'torch decode tok/s', 'ratio', 'decode ratio'], rows),
  );
  console.log(`tied over untied (Chimera): ${fixed(tiedOverUntied, 2)}x. tok/s: new tokens over the whole call (prefill included);`);
  console.log('decode: tokens after the first. Best of 2 calls per head on each side, tied and untied alternating. Ratio: Chimera');
  console.log('over PyTorch 1 thread with a KV cache.');
  if (torchMissing) console.log(TORCH_MISSING);
  if (flag('profile')) await profileDecode(32);
  console.log(
    `wrote ${writeResults('generation-stories', {
      chimeraBackend: chimera.backend,
      newTokens: NEW_TOKENS,
      promptLength: PROMPT_LENGTH,
      config: { ...STORIES, tieWordEmbeddings: 'both' },
      torchMissing,
      tiedOverUntied,
      rows: results,
    })}`,
  );
}

await main();
