/**
 * Whisper encoder benchmark: a Whisper-tiny-shaped `WhisperEncoder` (@chimera/audio-encoder; 80 mels, width 384,
 * 4 layers, 6 heads) forward on 30 s of log-mel features (3000 frames -> 1500 positions), plain and with Audio
 * Flamingo 3's 2x pooling, against its PyTorch twin (bench/torch/audio_encoder.py) on 1 and 2 threads in the same
 * run. Ratios are torch seconds / Chimera seconds (above 1: Chimera is faster).
 *
 *   npx vite-node bench/audio-encoder.ts        # optional: --backend cpu|wasm, --quick
 *
 * Prints a table and writes bench/results/audio-encoder.json.
 */
import { initBackend, manualSeed, tf, type BackendName } from '@chimera/core';
import { WhisperEncoder, whisperTiny } from '@chimera/audio-encoder';
import { TORCH_MISSING, fixed, flag, markdownTable, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';

const backend = option('backend') as BackendName | undefined;
const quick = flag('quick');
const FRAMES = 3000;

interface TorchTiming {
  label: string;
  threads: number;
  seconds: number;
  cpuSeconds: number;
}

interface Row {
  name: string;
  pool: number;
  seconds: number;
  cpuSeconds: number;
  gflop: number;
  gflops: number;
  torch: TorchTiming[];
}

/** Multiply-adds x 2 of one forward pass (convolutions, projections, attention scores and mixing, MLP). */
function forwardGflop(config: ReturnType<typeof whisperTiny>): number {
  const { numMelBins: m, dModel: d, numLayers: layers, ffnDim: f } = config;
  const t = FRAMES / 2;
  const convs = 2 * FRAMES * 3 * m * d + 2 * t * 3 * d * d;
  const layer = 2 * t * 4 * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * f;
  return (convs + layers * layer) / 1e9;
}

const report = await initBackend(backend ? { backend } : {});
manualSeed(0);
const config = whisperTiny();
const encoder = new WhisperEncoder(config);
const features = tf.randomNormal([1, FRAMES, config.numMelBins]) as tf.Tensor3D;
const rows: Row[] = [];
for (const pool of [1, 2]) {
  const run = () => {
    const out = encoder.forward(features, { pool });
    out.hidden.dataSync();
    out.hidden.dispose();
  };
  run(); // warm-up: first-use costs
  const timed = Array.from({ length: quick ? 1 : 3 }, () => timeWallAndCpu(run));
  const seconds = Math.min(...timed.map((t) => t.wallMs)) / 1000;
  const torch: TorchTiming[] = [];
  for (const r of torchRuns()) {
    for (const threads of [1, 2]) {
      const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>(
        'audio_encoder.py',
        ['--pool', pool, '--steps', quick ? 2 : 5, '--warmup', 1, '--threads', threads],
        r.env,
      );
      if (result) torch.push({ label: r.label, threads, seconds: result.best_seconds, cpuSeconds: result.best_cpu_seconds });
    }
  }
  const gflop = forwardGflop(config);
  rows.push({
    name: `whisper-tiny encoder, 30 s${pool > 1 ? `, pool ${pool}` : ''}`,
    pool,
    seconds,
    cpuSeconds: Math.min(...timed.map((t) => t.cpuMs)) / 1000,
    gflop,
    gflops: gflop / seconds,
    torch,
  });
}
encoder.dispose();
features.dispose();

console.log(`backend ${report.backend}${report.threadMode ? ` (${report.threadMode})` : ''}\n`);
const table: string[][] = [];
for (const r of rows) {
  table.push([r.name, 'chimera', fixed(r.seconds * 1000, 0), fixed(r.cpuSeconds * 1000, 0), fixed(r.gflops), '']);
  for (const t of r.torch) {
    const cpuRatio = t.threads === 1 ? `; CPU time ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
    table.push([r.name, `torch ${t.threads}T`, fixed(t.seconds * 1000, 0), fixed(t.cpuSeconds * 1000, 0), fixed(r.gflop / t.seconds), `${fixed(t.seconds / r.seconds, 2)}x${cpuRatio}`]);
  }
}
console.log(markdownTable(['case', 'engine', 'ms', 'CPU ms', 'GFLOP/s', 'torch / chimera'], table));
if (rows.every((r) => r.torch.length === 0)) console.log(`\n${TORCH_MISSING}`);
console.log(`wrote ${writeResults('audio-encoder', { frames: FRAMES, config, rows })}`);
