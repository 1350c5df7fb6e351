/**
 * Audio frontend benchmark: 30 s of 16 kHz audio to Whisper log-mel features (80 bins; one clip and a batch of 4)
 * with @chimera/audio-encoder's `WhisperFeatureExtractor` (the STFT as a matMul against a DFT basis), and 30 s of
 * 44.1 kHz audio resampled to 16 kHz with `resample` (polyphase, plain JS), each against the same pipeline in
 * PyTorch (bench/torch/audio_frontend.py: torch.stft + torchaudio's bank; torchaudio.functional.resample) on 1
 * and 2 threads in the same run. Ratios are torch seconds / Chimera seconds (above 1: Chimera is faster).
 *
 *   npx vite-node bench/audio-frontend.ts        # optional: --backend cpu|wasm, --quick
 *
 * Prints a table and writes bench/results/audio-frontend.json.
 */
import { initBackend, type BackendName } from '@chimera/core';
import { WhisperFeatureExtractor, resample } from '@chimera/audio-encoder';
import { TORCH_MISSING, fixed, flag, markdownTable, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';

const backend = option('backend') as BackendName | undefined;
const quick = flag('quick');
const SECONDS = 30;

interface TorchTiming {
  threads: number;
  seconds: number;
  cpuSeconds: number;
}

interface Row {
  name: string;
  batch: number;
  seconds: number;
  cpuSeconds: number;
  torch: TorchTiming[];
}

function noise(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function best(fn: () => void): { seconds: number; cpuSeconds: number } {
  fn(); // warm-up: kernel set-up, the basis tensors, the resampler's kernel bank
  const timed = Array.from({ length: quick ? 1 : 5 }, () => timeWallAndCpu(fn));
  return { seconds: Math.min(...timed.map((t) => t.wallMs)) / 1000, cpuSeconds: Math.min(...timed.map((t) => t.cpuMs)) / 1000 };
}

function torchTimings(args: (string | number)[]): TorchTiming[] {
  const out: TorchTiming[] = [];
  for (const r of torchRuns()) {
    for (const threads of [1, 2]) {
      const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>(
        'audio_frontend.py',
        [...args, '--steps', quick ? 2 : 5, '--warmup', 1, '--threads', threads],
        r.env,
      );
      if (result) out.push({ threads, seconds: result.best_seconds, cpuSeconds: result.best_cpu_seconds });
    }
  }
  return out;
}

const report = await initBackend(backend ? { backend } : {});
const extractor = new WhisperFeatureExtractor({ nMels: 80 });
const rows: Row[] = [];
for (const batch of [1, 4]) {
  const clips = Array.from({ length: batch }, (_, i) => noise(16000 * SECONDS, i + 1));
  const t = best(() => {
    const { features } = extractor.extract(clips);
    features.dataSync();
    features.dispose();
  });
  rows.push({ name: `log-mel 80 bins, 30 s${batch > 1 ? `, batch ${batch}` : ''}`, batch, ...t, torch: torchTimings(['--batch', batch, '--mels', 80]) });
}
extractor.dispose();
const clip44 = noise(44100 * SECONDS, 9);
rows.push({ name: 'resample 44.1 -> 16 kHz, 30 s', batch: 1, ...best(() => resample(clip44, 44100, 16000)), torch: torchTimings(['--resample']) });

console.log(`backend ${report.backend}${report.threadMode ? ` (${report.threadMode})` : ''}\n`);
const table: string[][] = [];
for (const r of rows) {
  table.push([r.name, 'chimera', fixed(r.seconds * 1000, 1), fixed(r.cpuSeconds * 1000, 1), '']);
  for (const t of r.torch) {
    const cpuRatio = t.threads === 1 ? `; CPU time ${fixed(t.cpuSeconds / r.cpuSeconds, 2)}x` : '';
    table.push([r.name, `torch ${t.threads}T`, fixed(t.seconds * 1000, 1), fixed(t.cpuSeconds * 1000, 1), `${fixed(t.seconds / r.seconds, 2)}x${cpuRatio}`]);
  }
}
console.log(markdownTable(['case', 'engine', 'ms', 'CPU ms', 'torch / chimera'], table));
if (rows.every((r) => r.torch.length === 0)) console.log(`\n${TORCH_MISSING}`);
console.log(`wrote ${writeResults('audio-frontend', { seconds: SECONDS, backend: report.backend, rows })}`);
