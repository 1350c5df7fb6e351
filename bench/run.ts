/**
 * The benchmark suite (`npm run bench`): runs each benchmark in its own process, one after the other, then prints
 * a summary table of the headline ratios from their results JSON and writes bench/results/summary.json.
 *
 *   npx vite-node bench/run.ts                 # all; needs the built packages (npm run build)
 *   npx vite-node bench/run.ts --quick         # smoke run: fewer steps and tokens
 *   npx vite-node bench/run.ts --only matmul,memory
 *   npx vite-node bench/run.ts --backend cpu   # passed to every benchmark
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, fixed, flag, markdownTable, option, writeResults } from './common';

const SUITE = ['matmul', 'train-step', 'conv', 'audio-frontend', 'audio-encoder', 'vq', 'generation', 'generation-torch', 'generation-stories', 'memory', 'threads'] as const;

const only = option('only')?.split(',');
const passThrough = [...(flag('quick') ? ['--quick'] : []), ...(option('backend') ? ['--backend', option('backend')!] : [])];
const viteNode = join(BENCH_DIR, '..', 'node_modules', '.bin', 'vite-node');

function read(name: string): Record<string, any> | null {
  const file = join(BENCH_DIR, 'results', `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
}

const started = performance.now();
const runs: { name: string; seconds: number; ok: boolean }[] = [];
for (const name of SUITE) {
  if (only && !only.includes(name)) continue;
  console.log(`\n## ${name}\n`);
  const start = performance.now();
  // generation-torch only reads results and runs python; threads always runs wasm.
  const args = name === 'generation-torch' ? [] : name === 'threads' ? passThrough.filter((a) => a === '--quick') : passThrough;
  const result = spawnSync(viteNode, [join(BENCH_DIR, `${name}.ts`), ...args], { stdio: 'inherit' });
  runs.push({ name, seconds: (performance.now() - start) / 1000, ok: result.status === 0 });
}

// Headline figures, each a ratio measured within one benchmark run.
const rows: string[][] = [];
const matmul = read('matmul');
if (matmul && runs.some((r) => r.name === 'matmul')) {
  const torch1 = matmul.torch?.find((t: any) => t.threads === 1);
  const shape = '512x512x512';
  rows.push([
    '2-D matmul ceiling (best shape)',
    `${fixed(matmul.ceilingGflops)} GFLOP/s`,
    `by CPU time ${fixed(matmul.cpuCeilingGflops)}; ${torch1 ? `torch 1 thread ${fixed(torch1.gflops[shape])} GFLOP/s at ${shape}` : 'no torch'}`,
  ]);
  for (const r of matmul.fastPaths ?? []) rows.push([`fast path: ${r.name}`, `${fixed(r.speedup)}x`, `${fixed(r.offMs)} -> ${fixed(r.onMs)} ms`]);
}
const train = read('train-step');
if (train && runs.some((r) => r.name === 'train-step')) {
  for (const r of train.results) {
    const tps = r.tokensPerStep / r.fastSeconds;
    rows.push([`train ${r.name}: tokens/s`, fixed(tps, 0), `${fixed(r.fastSeconds, 2)} s/step (${fixed(r.fastCpuSeconds, 2)} s CPU)`]);
    if (r.tfjsSeconds) {
      rows.push([`train ${r.name}: vs tfjs kernels`, `${fixed(r.tfjsSeconds / r.fastSeconds)}x`, `tfjs ${fixed(r.tfjsSeconds, 1)} s/step; CPU time ratio ${fixed(r.tfjsCpuSeconds / r.fastCpuSeconds)}x`]);
    }
    rows.push([`train ${r.name}: matmul ceiling used`, `${fixed(100 * r.ceilingFraction, 0)}%`, `${fixed(r.achievedGflops)} of ${fixed(r.ceilingGflops)} GFLOP/s; by CPU time ${fixed(100 * r.cpuCeilingFraction, 0)}%`]);
    for (const t of r.torch) {
      const cpu = t.threads === 1 ? `; CPU time ratio ${fixed(t.cpuSeconds / r.fastCpuSeconds, 2)}x` : '';
      rows.push([`train ${r.name}: vs torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, `${fixed(t.seconds / r.fastSeconds, 2)}x`, `torch ${fixed(t.seconds, 2)} s/step${cpu}`]);
    }
  }
}
const generationTorch = read('generation-torch');
if (generationTorch && runs.some((r) => r.name === 'generation-torch') && !generationTorch.torchMissing) {
  for (const r of generationTorch.rows) {
    rows.push([`generate ctx ${r.context} (cache): vs torch ${r.threads}T`, `${fixed(r.ratio, 2)}x`, `${fixed(r.chimera.tokensPerSecond)} vs ${fixed(r.torch.tokens_per_second)} tok/s`]);
  }
}
const stories = read('generation-stories');
if (stories && runs.some((r) => r.name === 'generation-stories')) {
  for (const r of stories.rows) {
    const torch = r.torch ? `${fixed(r.chimera.tokensPerSecond)} vs ${fixed(r.torch.tokens_per_second)} tok/s` : 'no torch';
    rows.push([`generate stories15M ${r.head} (cache): vs torch 1T`, `${fixed(r.ratio, 2)}x`, `${torch}; decode ratio ${fixed(r.decodeRatio, 2)}x`]);
  }
  rows.push(['generate stories15M: tied vs untied', `${fixed(stories.tiedOverUntied, 2)}x`, `${stories.newTokens} new tokens, best of 2 calls each`]);
}
const generation = read('generation');
if (generation && runs.some((r) => r.name === 'generation')) {
  for (const r of generation.rows) rows.push([`generate ctx ${r.context}: cache vs recompute`, `${fixed(r.speedup)}x`, `${fixed(r.cached.tokensPerSecond)} tok/s cached`]);
}
const memory = read('memory');
if (memory && runs.some((r) => r.name === 'memory')) {
  rows.push([`memory: tensors after ${memory.steps} steps`, memory.tensorGrowth === 0 ? 'no growth' : `+${memory.tensorGrowth}`, `peak RSS ${fixed(memory.peakRssMB, 0)} MB`]);
}

const conv = read('conv');
if (conv && runs.some((r) => r.name === 'conv')) {
  const ratios = (label: string, result: { seconds: number; cpuSeconds: number; torch: { threads: number; seconds: number; cpuSeconds: number }[] }, unit: string) => {
    rows.push([`${label}: ms`, fixed(result.seconds * 1000, 0), `CPU ${fixed(result.cpuSeconds * 1000, 0)} ms`]);
    for (const t of result.torch) {
      const cpu = t.threads === 1 ? `; CPU time ratio ${fixed(t.cpuSeconds / result.cpuSeconds, 2)}x` : '';
      rows.push([`${label}: vs torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, `${fixed(t.seconds / result.seconds, 2)}x`, `torch ${fixed(t.seconds * 1000, 0)} ms ${unit}${cpu}`]);
    }
  };
  ratios(`conv stack train step (batch ${conv.stack.batch})`, conv.stack, 'per step');
  ratios('Whisper conv1d front end forward', conv.frontEnd, 'per forward');
  for (const k of conv.kernels ?? []) rows.push([`conv fast path: ${k.name}`, `${fixed(k.speedup)}x`, `${fixed(k.offMs)} -> ${fixed(k.onMs)} ms`]);
}

const audioFrontend = read('audio-frontend');
if (audioFrontend && runs.some((r) => r.name === 'audio-frontend')) {
  // 30 s to Whisper log-mel (80 bins; 1 clip and a batch of 4) and a 44.1 -> 16 kHz resample, against PyTorch.
  for (const r of audioFrontend.rows) {
    for (const t of r.torch) {
      const cpu = t.threads === 1 ? `; CPU time ratio ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
      rows.push([`${r.name}: vs torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, `${fixed(t.seconds / r.seconds, 2)}x`, `${fixed(r.seconds * 1000, 1)} vs ${fixed(t.seconds * 1000, 1)} ms${cpu}`]);
    }
  }
}

const audioEncoder = read('audio-encoder');
if (audioEncoder && runs.some((r) => r.name === 'audio-encoder')) {
  // Whisper-tiny encoder forward on 30 s (3000 frames), plain and 2x-pooled, against its PyTorch twin.
  for (const r of audioEncoder.rows) {
    for (const t of r.torch) {
      const cpu = t.threads === 1 ? `; CPU time ratio ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
      rows.push([`${r.name}: vs torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, `${fixed(t.seconds / r.seconds, 2)}x`, `${fixed(r.seconds * 1000, 0)} vs ${fixed(t.seconds * 1000, 0)} ms${cpu}`]);
    }
  }
}

const vq = read('vq');
if (vq && runs.some((r) => r.name === 'vq')) {
  // @chimera/vq-tokenizer's VQModel (LlamaGen layout, 64x64): a training step and a decode, against its PyTorch twin.
  for (const r of vq.rows) {
    for (const t of r.torch) {
      const cpu = t.threads === 1 ? `; CPU time ratio ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
      rows.push([`${r.name}: vs torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, `${fixed(t.seconds / r.seconds, 2)}x`, `${fixed(r.seconds * 1000, 0)} vs ${fixed(t.seconds * 1000, 0)} ms${cpu}`]);
    }
  }
}

const threads = read('threads');
if (threads && runs.some((r) => r.name === 'threads') && threads.summary) {
  // The default thread policy against one thread, per condition (threads.ts runs each in its own child).
  for (const [key, ratios] of Object.entries(threads.summary as Record<string, Record<string, number>>)) {
    const [condition, work] = key.split('.');
    const other = ratios.threadsVsOne ?? ratios['2VsOne'];
    rows.push([`default threads vs 1 thread, ${condition}: ${work}`, `${fixed(ratios.defaultVsOne, 2)}x`, other ? `threads: 2 ${fixed(other, 2)}x` : '']);
  }
  for (const check of threads.checks ?? []) rows.push(['threads target', check.includes('NOT met') ? 'NOT met' : 'met', check]);
}

const total = (performance.now() - started) / 1000;
console.log('\n## summary\n');
console.log(markdownTable(['figure', 'value', 'detail'], rows));
console.log(`\n${runs.map((r) => `${r.name} ${fixed(r.seconds, 0)} s${r.ok ? '' : ' (FAILED)'}`).join(', ')}; total ${fixed(total, 0)} s`);
console.log(`wrote ${writeResults('summary', { runs, totalSeconds: total, figures: rows.map(([figure, value, detail]) => ({ figure, value, detail })) })}`);
if (runs.some((r) => !r.ok)) process.exitCode = 1;
