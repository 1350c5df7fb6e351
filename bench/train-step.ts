/**
 * Training benchmark: tokens/s of one training step (forward, causal-LM loss, backward, AdamW) of @chimera/llm's
 * CausalLM at widths 256 and 512 (4 layers, head dim 64, SwiGLU, vocab 512, batch 8 x 128 tokens) and of a
 * LLaVA-style composed model (@chimera/fusion), with Chimera's fast paths and (width 256) with tfjs's own kernels,
 * in the same process; the achieved fraction of the backend's
 * own 2-D matmul ceiling (measured in the same process); where the time goes (per-kernel profile); and the same
 * model, shapes and optimizer in PyTorch (bench/torch/train_step.py) on 1 and 2 threads.
 *
 *   npx vite-node bench/train-step.ts        # optional: --backend cpu|wasm, --quick, --widths 256,512,
 *                                            #   --naive-widths 256 (widths that also time tfjs's own kernels), --no-llava
 *
 * Prints tables and writes bench/results/train-step.json.
 */
import { AdamW, Rng, initBackend, manualSeed, tf, type BackendName, type Module } from '@chimera/core';
import { ByteTokenizer, CausalLM, addTokensToModel, causalLMLoss, llamaConfig, shiftedTargets, type LlamaConfig } from '@chimera/llm';
import { VisionTransformer, imageFromPixels, tinyViT, visionModality } from '@chimera/vision-encoder';
import { compose, earlyFusion, type ComposedSample } from '@chimera/fusion';
import { TORCH_MISSING, fixed, flag, markdownTable, matmulCeiling, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';
import { profileKernels, type KernelProfile } from './kernel-profile';

const backendArg = option('backend') as BackendName | undefined;
const quick = flag('quick');
const widths = (option('widths') ?? '256,512').split(',').filter(Boolean).map(Number);
/**
 * Widths whose step is also timed with tfjs's own kernels. That step costs 10-30x a fast one (20-60 s at width
 * 256, 70-140 s at 512 on a 2-core machine), so by default only the reference width of the targets runs it.
 */
const naiveWidths = (option('naive-widths') ?? '256').split(',').filter(Boolean).map(Number);
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
  /** Arguments for the PyTorch twin describing the same model, or null when there is no reference. */
  torchArgs: (string | number)[] | null;
  /** The twin in bench/torch (default train_step.py, the plain LLM). */
  torchScript?: string;
}

/** One training step as the benchmarks time it: loss, gradients, one AdamW update; returns the loss. */
function adamStep(optimizer: AdamW, variables: tf.Variable[], loss: () => tf.Scalar): number {
  const { value, grads } = tf.variableGrads(loss, variables);
  optimizer.applyGradients(grads);
  const lossValue = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return lossValue;
}

/** Composed models to benchmark after the plain LLMs, each with its PyTorch twin (`--no-llava` skips them). */
export const COMPOSED_MODELS: { name: string; build: () => TrainBench }[] = flag('no-llava') ? [] : [{ name: 'LLaVA-style', build: llavaBench }];

/** LLaVA-style composition: a ViT (64x64 images, 8x8 patches: 64 image tokens), an mlp2x_gelu projector, the LLM. */
export const LLAVA = { imageSize: 64, patchSize: 8, visionWidth: 192, visionLayers: 4, visionHeads: 3, textTokens: 64 };

/**
 * LLaVA stage-2 training (projector + LLM learn, the vision encoder is frozen) of the width-256 LLM behind a small
 * ViT, batch 8 of (image, text) samples of 128 positions: 64 image tokens and 64 letters.
 * The step includes what compose() does per batch (tokenizing, image preprocessing, packing).
 */
function llavaBench(): TrainBench {
  manualSeed(0);
  const tokenizer = new ByteTokenizer();
  const base = llmConfig(256);
  const backbone = new CausalLM({ ...base, vocabSize: tokenizer.vocabSize });
  addTokensToModel(tokenizer, backbone, ['<image>']);
  const vit = tinyViT({
    imageSize: LLAVA.imageSize, patchSize: LLAVA.patchSize, hiddenSize: LLAVA.visionWidth, numLayers: LLAVA.visionLayers,
    numHeads: LLAVA.visionHeads, intermediateSize: 4 * LLAVA.visionWidth,
  });
  const image = visionModality({ mode: 'vit', encoder: new VisionTransformer(vit) });
  const model = compose({
    backbone,
    modalities: { image },
    fusion: { image: earlyFusion({ projector: 'mlp2x_gelu' }) },
    tokenizer,
    placeholders: { image: '<image>' },
  });
  model.trainOnly('projector+llm');
  const rng = new Rng(1);
  const letters = 'abcdefghijklmnopqrstuvwxyz ';
  const samples: ComposedSample[] = Array.from({ length: BATCH }, () => {
    const pixels = Uint8Array.from({ length: LLAVA.imageSize * LLAVA.imageSize * 3 }, () => Math.floor(rng.next() * 256));
    const text = Array.from({ length: LLAVA.textTokens }, () => letters[Math.floor(rng.next() * letters.length)]).join('');
    return [
      { modality: 'image', raw: imageFromPixels(pixels, LLAVA.imageSize, LLAVA.imageSize, 3) },
      { text },
    ];
  });
  const named = model.namedParameters().filter(([, v]) => v.trainable);
  const optimizer = new AdamW(named, { learningRate: 1e-3, weightDecay: 0.01 });
  const variables = named.map(([, v]) => v);
  const positions = model.layout(samples).length;
  return {
    name: `LLaVA-style (ViT ${LLAVA.visionWidth}x${LLAVA.visionLayers} + LLM 256)`,
    tokensPerStep: BATCH * positions,
    step: () => adamStep(optimizer, variables, () => model.loss(samples)),
    dispose() {
      optimizer.dispose();
      model.dispose();
    },
    torchScript: 'llava_train_step.py',
    torchArgs: [
      '--vocab', tokenizer.vocabSize, '--hidden', base.hiddenSize, '--layers', base.numLayers, '--heads', base.numHeads,
      '--intermediate', base.intermediateSize, '--image-size', LLAVA.imageSize, '--patch', LLAVA.patchSize,
      '--vision-width', LLAVA.visionWidth, '--vision-layers', LLAVA.visionLayers, '--vision-heads', LLAVA.visionHeads,
      '--text', LLAVA.textTokens, '--batch', BATCH,
    ],
  };
}

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
    step: () => adamStep(optimizer, variables, () => causalLMLoss(model.forward({ inputIds: ids }).logits, targets, mask)),
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

/** Every ceiling probe of this process: the fractions use the best of all of them (see withProcessCeiling). */
const allProbes: { gflops: number; cpuGflops: number }[] = [];

/**
 * The ceiling is the backend's best 2-D rate, not the rate of whichever probes ran next to one model: on a busy
 * machine a model measured with few probes would otherwise get a low ceiling (and a fraction above 100%).
 */
function withProcessCeiling(r: WidthResult): WidthResult {
  const ceiling = Math.max(...allProbes.map((c) => c.gflops));
  const cpuCeiling = Math.max(...allProbes.map((c) => c.cpuGflops));
  return {
    ...r,
    ceilingGflops: ceiling,
    ceilingFraction: r.achievedGflops / ceiling,
    cpuCeilingGflops: cpuCeiling,
    cpuCeilingFraction: r.matmulGflopPerStep / r.fastCpuSeconds / cpuCeiling,
  };
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
  allProbes.push(...ceilings);
  const ceiling = Math.max(...ceilings.map((c) => c.gflops));
  const cpuCeiling = Math.max(...ceilings.map((c) => c.cpuGflops));
  const gflop = profile.matmulFlops / 1e9;
  const torch: WidthResult['torch'] = [];
  if (bench.torchArgs) {
    for (const run of torchRuns()) {
      for (const threads of [1, 2]) {
        const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>(
          bench.torchScript ?? 'train_step.py',
          [...bench.torchArgs, '--threads', threads, '--steps', quick ? 1 : 2, '--warmup', 1],
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

  let results: WidthResult[] = [];
  for (const width of widths) {
    const bench = llmBench(llmConfig(width));
    results.push(await measure(bench, backend, quick ? 1 : width > 256 ? 1 : 3, naiveWidths.includes(width) && !(quick && width > 256)));
    bench.dispose();
  }
  for (const composed of COMPOSED_MODELS) {
    const bench = composed.build();
    results.push(await measure(bench, backend, quick ? 1 : 2, false));
    bench.dispose();
  }
  results = results.map(withProcessCeiling);

  const tps = (seconds: number | null, tokens: number) => (seconds ? tokens / seconds : null);
  console.log(`\nTraining step on ${backend} (best of the timed steps; ceiling: best 2-D matmul rate of all the probes run between the steps)`);
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
    console.log('\nPyTorch, same model, shapes and optimizer, best of 2 steps (ratio: Chimera tokens/s over PyTorch tokens/s)');
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
