/**
 * Training benchmark: tokens/s of one training step (forward, causal-LM loss, backward, AdamW) of @chimera/llm's
 * CausalLM at widths 256 and 512 (4 layers, head dim 64, SwiGLU, vocab 512, batch 8 x 128 tokens), with
 * Chimera's fast paths and with tfjs's own kernels, in the same process; the achieved fraction of the backend's
 * own 2-D matmul ceiling (measured in the same process); where the time goes (per-kernel profile); and the same
 * model, shapes and optimizer in PyTorch (bench/torch/train_step.py) on 1 and 2 threads.
 *
 *   npx vite-node bench/train-step.ts        # optional: --backend cpu|wasm, --quick, --widths 256,512
 *
 * Prints tables and writes bench/results/train-step.json.
 */
import { AdamW, initBackend, manualSeed, tf, type BackendName, type Module } from '@chimera/core';
import { CausalLM, causalLMLoss, llamaConfig, shiftedTargets, type LlamaConfig } from '@chimera/llm';
import { TORCH_MISSING, fixed, flag, markdownTable, matmulCeiling, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';
import { profileKernels, type KernelProfile } from './kernel-profile';

const backendArg = option('backend') as BackendName | undefined;
const quick = flag('quick');
const widths = (option('widths') ?? '256,512').split(',').map(Number);
const BATCH = 8;
const SEQ = 128;

/**
 * The fast paths kept in the "tfjs" baseline: without the one-pass UnsortedSegmentSum, the gradient of the loss's
 * gather over B*T*V = 524288 segments runs tfjs's O(segments x input) cpu loop and one step does not finish in
 * 15 minutes, so the baseline would not measure anything else.
 */
const BASELINE_FAST_PATHS = ['wasm-segment-sum', 'cpu-segment-sum'];

/** A model to train and one step of it; `dispose` frees everything it made. */
export interface TrainBench {
  name: string;
  tokensPerStep: number;
  step(): number;
  dispose(): void;
  /** Arguments for bench/torch/train_step.py describing the same model, or null when there is no reference. */
  torchArgs: (string | number)[] | null;
}

/**
 * Composed models to benchmark after the plain LLMs. Hook for fusion: a LLaVA-style model (vision encoder +
 * projector + LLM) is added here once @chimera/fusion can compose one, with its PyTorch reference.
 */
export const COMPOSED_MODELS: { name: string; build: () => TrainBench }[] = [];

function llmConfig(width: number): LlamaConfig {
  return llamaConfig({
    vocabSize: 512,
    hiddenSize: width,
    numLayers: 4,
    numHeads: width / 64,
    intermediateSize: Math.round((width * 8) / 3 / 16) * 16, // 688 at 256, 1360 at 512 (SwiGLU's 8/3 ratio)
    maxPositionEmbeddings: SEQ,
  });
}

function llmBench(config: LlamaConfig): TrainBench {
  manualSeed(0);
  const model = new CausalLM(config);
  const optimizer = new AdamW(model as Module, { learningRate: 1e-3, weightDecay: 0.01 });
  const ids = tf.tensor2d(Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919 + 13) % config.vocabSize), [BATCH, SEQ], 'int32');
  const { targets, mask } = shiftedTargets(ids);
  const variables = model.namedParameters().map(([, v]) => v);
  return {
    name: `LLM width ${config.hiddenSize}`,
    tokensPerStep: BATCH * SEQ,
    step() {
      const { value, grads } = tf.variableGrads(() => causalLMLoss(model.forward({ inputIds: ids }).logits, targets, mask), variables);
      optimizer.applyGradients(grads);
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    },
    dispose() {
      optimizer.dispose();
      model.dispose();
      tf.dispose([ids, targets, mask]);
    },
    torchArgs: [
      '--vocab', config.vocabSize, '--hidden', config.hiddenSize, '--layers', config.numLayers, '--heads', config.numHeads,
      '--intermediate', config.intermediateSize, '--batch', BATCH, '--seq', SEQ,
    ],
  };
}

interface WidthResult {
  name: string;
  tokensPerStep: number;
  /** Best of the timed steps (wall), and the least CPU time of a step (all threads of the process). */
  fastSeconds: number;
  fastCpuSeconds: number;
  stepSeconds: number[];
  /** One step with tfjs's kernels and gradients (BASELINE_FAST_PATHS only). */
  tfjsSeconds: number | null;
  tfjsCpuSeconds: number | null;
  matmulGflopPerStep: number;
  achievedGflops: number;
  /** Best 2-D matmul rate of the probes run between the steps. */
  ceilingGflops: number;
  ceilingFraction: number;
  /** The same by CPU time: what a machine with a free core gives. */
  cpuCeilingGflops: number;
  cpuCeilingFraction: number;
  profile: KernelProfile;
  torch: { label: string; threads: number; seconds: number; cpuSeconds: number }[];
}

/**
 * Best-of-N timing, with a ceiling probe before every step: on a shared machine the best step and the best probe
 * are the least disturbed by other work, and interleaving them exposes both to the same conditions.
 */
async function measure(bench: TrainBench, backend: BackendName, steps: number, naive: boolean): Promise<WidthResult> {
  await initBackend({ backend });
  bench.step(); // warm-up: first-use costs
  const timed: { wallMs: number; cpuMs: number }[] = [];
  const ceilings: { gflops: number; cpuGflops: number }[] = [];
  for (let i = 0; i < steps; i++) {
    ceilings.push(matmulCeiling());
    timed.push(timeWallAndCpu(() => bench.step()));
  }
  const profile = profileKernels(() => bench.step());
  let tfjs: { wallMs: number; cpuMs: number } | null = null;
  if (naive) {
    await initBackend({ backend, fastPaths: BASELINE_FAST_PATHS });
    tfjs = timeWallAndCpu(() => bench.step());
    await initBackend({ backend });
  }
  const fastSeconds = Math.min(...timed.map((s) => s.wallMs)) / 1000;
  const fastCpuSeconds = Math.min(...timed.map((s) => s.cpuMs)) / 1000;
  const ceiling = Math.max(...ceilings.map((c) => c.gflops));
  const cpuCeiling = Math.max(...ceilings.map((c) => c.cpuGflops));
  const gflop = profile.matmulFlops / 1e9;
  const torch: WidthResult['torch'] = [];
  if (bench.torchArgs) {
    for (const run of torchRuns()) {
      for (const threads of [1, 2]) {
        const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>(
          'train_step.py',
          [...bench.torchArgs, '--threads', threads, '--steps', quick ? 1 : 3, '--warmup', 1],
          run.env,
        );
        if (result) torch.push({ label: run.label, threads, seconds: result.best_seconds, cpuSeconds: result.best_cpu_seconds });
      }
    }
  }
  return {
    name: bench.name,
    tokensPerStep: bench.tokensPerStep,
    fastSeconds,
    fastCpuSeconds,
    stepSeconds: timed.map((s) => s.wallMs / 1000),
    tfjsSeconds: tfjs ? tfjs.wallMs / 1000 : null,
    tfjsCpuSeconds: tfjs ? tfjs.cpuMs / 1000 : null,
    matmulGflopPerStep: gflop,
    achievedGflops: gflop / fastSeconds,
    ceilingGflops: ceiling,
    ceilingFraction: gflop / fastSeconds / ceiling,
    cpuCeilingGflops: cpuCeiling,
    cpuCeilingFraction: gflop / fastCpuSeconds / cpuCeiling,
    profile,
    torch,
  };
}

async function main(): Promise<void> {
  const report = await initBackend(backendArg ? { backend: backendArg } : {});
  const backend = report.backend;
  console.log(`backend: ${backend}; batch ${BATCH} x ${SEQ} tokens; AdamW; fast paths: ${report.fastPaths.join(', ') || 'none'}`);

  const results: WidthResult[] = [];
  for (const width of widths) {
    const bench = llmBench(llmConfig(width));
    results.push(await measure(bench, backend, quick ? 1 : width <= 256 ? 3 : 2, !(quick && width > 256)));
    bench.dispose();
  }
  for (const composed of COMPOSED_MODELS) {
    const bench = composed.build();
    results.push(await measure(bench, backend, quick ? 1 : 2, !quick));
    bench.dispose();
  }

  const tps = (seconds: number | null, tokens: number) => (seconds ? tokens / seconds : null);
  console.log(`\nTraining step on ${backend} (best of the timed steps; ceiling: best 2-D matmul rate probed between them)`);
  console.log(
    markdownTable(
      ['model', 's/step', 'tokens/s', 'tfjs s/step', 'speed-up', 'GFLOP/step', 'GFLOP/s', 'ceiling', '% of ceiling', 'CPU s/step', '% of ceiling (CPU)'],
      results.map((r) => [
        r.name,
        fixed(r.fastSeconds, 2),
        fixed(tps(r.fastSeconds, r.tokensPerStep), 0),
        fixed(r.tfjsSeconds, 2),
        r.tfjsSeconds ? `${fixed(r.tfjsSeconds / r.fastSeconds)}x` : '-',
        fixed(r.matmulGflopPerStep, 2),
        fixed(r.achievedGflops),
        fixed(r.ceilingGflops),
        `${fixed(100 * r.ceilingFraction, 0)}%`,
        fixed(r.fastCpuSeconds, 2),
        `${fixed(100 * r.cpuCeilingFraction, 0)}%`,
      ]),
    ),
  );
  console.log('CPU columns use process CPU time instead of wall time (robust when other work shares the cores).');
  console.log('tfjs = tfjs-backend-wasm kernels and gradients, keeping only the one-pass UnsortedSegmentSum (without it a step does not finish).');

  const torchRows = results.flatMap((r) =>
    r.torch.map((t) => [
      r.name, t.label, String(t.threads), fixed(t.seconds, 2), fixed(r.tokensPerStep / t.seconds, 0), `${fixed(t.seconds / r.fastSeconds, 2)}x`,
      t.threads === 1 ? fixed(t.cpuSeconds, 2) : '-', t.threads === 1 ? `${fixed(t.cpuSeconds / r.fastCpuSeconds, 2)}x` : '-',
    ]),
  );
  if (torchRows.length > 0) {
    console.log('\nPyTorch, same model, shapes and optimizer, best of 3 steps (ratio: Chimera tokens/s over PyTorch tokens/s)');
    console.log(markdownTable(['model', 'OpenBLAS', 'threads', 'torch s/step', 'torch tokens/s', 'Chimera / torch', 'torch CPU s/step', 'Chimera / torch (CPU)'], torchRows));
  } else {
    console.log(`\n${TORCH_MISSING}`);
  }

  for (const r of results) {
    const { profile } = r;
    const other = profile.cpuMs - profile.kernelMs;
    const rows = profile.kernels.slice(0, 10).map((k) => [k.name, String(k.calls), fixed(k.ms, 0), `${fixed((100 * k.ms) / profile.cpuMs, 1)}%`]);
    rows.push(['(outside kernels: engine, autograd, JS)', '-', fixed(other, 0), `${fixed((100 * other) / profile.cpuMs, 1)}%`]);
    console.log(
      `\nWhere the time goes: ${r.name}, one profiled step: ${fixed(profile.cpuMs, 0)} ms CPU (${fixed(profile.wallMs, 0)} ms wall); ` +
        `matmuls at ${fixed(profile.matmulFlops / profile.matmulMs / 1e6)} GFLOP/s of CPU time`,
    );
    console.log(markdownTable(['kernel', 'calls', 'CPU ms', 'share'], rows));
  }

  const first = results[0];
  if (first && first.name.endsWith('256')) {
    const torch1 = first.torch.filter((t) => t.threads === 1);
    console.log('\nTargets (width 256):');
    const cpuSpeedup = first.tfjsCpuSeconds ? ` (CPU time: ${fixed(first.tfjsCpuSeconds / first.fastCpuSeconds)}x)` : '';
    console.log(`  >= 10x faster than tfjs wasm: ${first.tfjsSeconds ? fixed(first.tfjsSeconds / first.fastSeconds) : '-'}x${cpuSpeedup}`);
    console.log(`  >= 60% of the matmul ceiling: ${fixed(100 * first.ceilingFraction, 0)}% (CPU time: ${fixed(100 * first.cpuCeilingFraction, 0)}%)`);
    for (const t of torch1) {
      console.log(`  >= 0.25x PyTorch 1 thread (${t.label}): ${fixed(t.seconds / first.fastSeconds, 2)}x (CPU time: ${fixed(t.cpuSeconds / first.fastCpuSeconds, 2)}x)`);
    }
  }

  const out = writeResults('train-step', {
    batch: BATCH,
    sequence: SEQ,
    baselineFastPaths: BASELINE_FAST_PATHS,
    results: results.map(({ profile, ...r }) => ({ ...r, profile: { ...profile, kernels: profile.kernels.slice(0, 20) } })),
  });
  console.log(`wrote ${out}`);
}

await main();
