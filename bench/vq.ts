/**
 * VQ tokenizer benchmark: a VQ-VAE training step and a VQ decode of @chimera/vq-tokenizer's `VQModel` (LlamaGen's
 * layout: 64x64 RGB, ch 32, ch_mult 1,1,2,2,4, attention in the bottleneck, 1024 codes of width 8; batch 8)
 * against its PyTorch twin (bench/torch/vq.py, the parity test's reference module) on 1 and 2 threads in the same
 * run. Ratios are torch seconds / Chimera seconds (above 1: Chimera is faster).
 *
 *   npx vite-node bench/vq.ts        # optional: --backend cpu|wasm, --quick
 *
 * Prints a table and writes bench/results/vq.json.
 */
import { AdamW, initBackend, manualSeed, tf, type BackendName } from '@chimera/core';
import { VQModel, vqTrainingLoss } from '@chimera/vq-tokenizer';
import { TORCH_MISSING, fixed, flag, markdownTable, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';

const backend = option('backend') as BackendName | undefined;
const quick = flag('quick');
const BATCH = 8;
const SIZE = 64;
const CONFIG = { channels: 32, channelMult: [1, 1, 2, 2, 4], numResBlocks: 1, zChannels: 64, codebookSize: 1024, codebookDim: 8, normGroups: 8, attention: true };

interface TorchTiming {
  threads: number;
  seconds: number;
  cpuSeconds: number;
}

interface Row {
  name: string;
  mode: 'train' | 'decode';
  seconds: number;
  cpuSeconds: number;
  torch: TorchTiming[];
}

const report = await initBackend(backend ? { backend } : {});
manualSeed(0);
const model = new VQModel(CONFIG);
const images = tf.randomUniform([BATCH, SIZE, SIZE, 3], -1, 1) as tf.Tensor4D;
const grid = SIZE / model.downsample;
const codes = tf.randomUniform([BATCH, grid, grid], 0, CONFIG.codebookSize, 'int32') as tf.Tensor3D;
// Named variables rather than the module: bench imports core from source, the package from its build (two Module classes).
const optimizer = new AdamW(model.namedParameters().filter(([, v]) => v.trainable), { learningRate: 1e-3, weightDecay: 0 });
const variables = model.trainableVariables();

const train = () => {
  const { value, grads } = tf.variableGrads(() => {
    const out = vqTrainingLoss(model, images);
    out.latents.dispose();
    out.codes.dispose();
    return out.loss;
  }, variables);
  optimizer.applyGradients(grads);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
const decode = () => {
  const out = model.decode(codes);
  out.dataSync();
  out.dispose();
};

const rows: Row[] = [];
for (const [mode, run] of [['train', train], ['decode', decode]] as const) {
  run(); // warm-up: first-use costs
  const timed = Array.from({ length: quick ? 2 : 5 }, () => timeWallAndCpu(run));
  const torch: TorchTiming[] = [];
  for (const r of torchRuns()) {
    for (const threads of [1, 2]) {
      const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>('vq.py', ['--mode', mode, '--steps', quick ? 2 : 5, '--warmup', 1, '--threads', threads], r.env);
      if (result) torch.push({ threads, seconds: result.best_seconds, cpuSeconds: result.best_cpu_seconds });
    }
  }
  rows.push({
    name: mode === 'train' ? `VQ-VAE train step (batch ${BATCH}, ${SIZE}x${SIZE})` : `VQ decode (batch ${BATCH}, ${grid}x${grid} codes)`,
    mode,
    seconds: Math.min(...timed.map((t) => t.wallMs)) / 1000,
    cpuSeconds: Math.min(...timed.map((t) => t.cpuMs)) / 1000,
    torch,
  });
}
tf.dispose([images, codes]);
optimizer.dispose();
model.dispose();

console.log(`backend ${report.backend}${report.threadMode ? ` (${report.threadMode})` : ''}\n`);
const table: string[][] = [];
for (const r of rows) {
  table.push([r.name, 'chimera', fixed(r.seconds * 1000, 0), fixed(r.cpuSeconds * 1000, 0), '']);
  for (const t of r.torch) {
    const cpuRatio = t.threads === 1 ? `; CPU time ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
    table.push([r.name, `torch ${t.threads}T`, fixed(t.seconds * 1000, 0), fixed(t.cpuSeconds * 1000, 0), `${fixed(t.seconds / r.seconds, 2)}x${cpuRatio}`]);
  }
}
console.log(markdownTable(['case', 'engine', 'ms', 'CPU ms', 'torch / chimera'], table));
if (rows.every((r) => r.torch.length === 0)) console.log(`\n${TORCH_MISSING}`);
console.log(`wrote ${writeResults('vq', { batch: BATCH, size: SIZE, config: CONFIG, rows })}`);
