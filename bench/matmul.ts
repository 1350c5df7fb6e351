/**
 * Matmul benchmark: the engine ceiling (plain 2-D matmul GFLOP/s on the chosen backend, and OpenBLAS through
 * PyTorch on 1 and 2 threads when available) and what each matmul fast path buys, timed with fast paths on and
 * off in the same process.
 *
 *   npx vite-node bench/matmul.ts            # optional: --backend cpu|wasm, --quick
 *
 * Prints two tables and writes bench/results/matmul.json.
 */
import { initBackend, tf, type BackendName } from '@chimera/core';
import { CEILING_SHAPES, TORCH_MISSING, fixed, flag, markdownTable, matmulRates, option, runTorch, timeRuns, torchRuns, writeResults } from './common';

const backendArg = option('backend') as BackendName | undefined;
const quick = flag('quick');

/** Operations the fast paths change, each timed with them off and on (same process, alternating rounds). */
const CASES: { name: string; build: () => { run: () => tf.Tensor | tf.Tensor[]; inputs: tf.Tensor[] } }[] = [
  {
    name: 'linear backward: dy @ W^T and x^T @ dy ([1024,256] -> 768)',
    build: () => {
      const x = tf.randomNormal([1024, 256]);
      const w = tf.randomNormal([256, 768]);
      const dy = tf.randomNormal([1024, 768]);
      return { inputs: [x, w, dy], run: () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b), dy)))([x, w]) };
    },
  },
  {
    name: 'matMul(a, b, false, true) [1024,768] x [256,768]^T',
    build: () => {
      const a = tf.randomNormal([1024, 768]);
      const b = tf.randomNormal([256, 768]);
      return { inputs: [a, b], run: () => tf.matMul(a, b, false, true) };
    },
  },
  {
    name: 'attention scores: 32 x ([128,64] @ [64,128])',
    build: () => {
      const q = tf.randomNormal([8, 4, 128, 64]);
      const k = tf.randomNormal([8, 4, 64, 128]);
      return { inputs: [q, k], run: () => tf.matMul(q, k) };
    },
  },
  {
    name: '10 x transpose [1024,688] (a linear input, for its weight gradient)',
    build: () => {
      const x = tf.randomNormal([1024, 688]);
      return { inputs: [x], run: () => Array.from({ length: 10 }, () => tf.transpose(x)) };
    },
  },
  {
    name: 'batched [2,1024,64] @ [2,64,512]',
    build: () => {
      const a = tf.randomNormal([2, 1024, 64]);
      const b = tf.randomNormal([2, 64, 512]);
      return { inputs: [a, b], run: () => tf.matMul(a, b) };
    },
  },
];

async function main(): Promise<void> {
  const report = await initBackend(backendArg ? { backend: backendArg } : {});
  const backend = report.backend;
  console.log(`backend: ${backend}; fast paths: ${report.fastPaths.join(', ') || 'none'}`);

  // Engine ceiling.
  const shapes = quick ? CEILING_SHAPES.slice(-1) : CEILING_SHAPES;
  const chimera: Record<string, number> = {};
  const chimeraCpu: Record<string, number> = {};
  for (const [m, k, n] of shapes) {
    const rates = matmulRates(m, k, n);
    chimera[`${m}x${k}x${n}`] = rates.wall;
    chimeraCpu[`${m}x${k}x${n}`] = rates.cpu;
  }
  const torch: { label: string; threads: number; gflops: Record<string, number> }[] = [];
  for (const run of torchRuns()) {
    for (const threads of [1, 2]) {
      const result = runTorch<{ gflops: Record<string, number> }>('matmul.py', ['--threads', threads, '--shapes', Object.keys(chimera).join(',')], run.env);
      if (result) torch.push({ label: run.label, threads, gflops: result.gflops });
    }
  }
  const ceilingHeader = ['m x k x n', `${backend} GFLOP/s`, `${backend} GFLOP/s (CPU time)`, ...torch.map((t) => `torch ${t.threads}T ${t.label === 'default' ? '' : `(${t.label.split('=')[1]})`} GFLOP/s`.replace('  ', ' '))];
  const ceilingRows = Object.entries(chimera).map(([shape, rate]) => [shape, fixed(rate), fixed(chimeraCpu[shape]), ...torch.map((t) => fixed(t.gflops[shape]))]);
  console.log('\nEngine ceiling: plain 2-D matmul, fresh right-hand operand each call (torch: wall time)');
  console.log(markdownTable(ceilingHeader, ceilingRows));
  if (torch.length === 0) console.log(TORCH_MISSING);
  const ceiling = Math.max(...Object.values(chimera));
  const cpuCeiling = Math.max(...Object.values(chimeraCpu));

  // Fast paths: off vs on, alternating rounds so load changes hit both; best time of each. tfjs's paths take
  // 0.5-5 s a call, so they run once per round (after a warm-up call in the first round).
  const rows: { name: string; offMs: number; onMs: number; speedup: number }[] = [];
  if (backend === 'wasm') {
    for (const c of CASES) {
      const { run, inputs } = c.build();
      const off: number[] = [];
      const on: number[] = [];
      const rounds = quick ? 1 : 2;
      for (let round = 0; round < rounds; round++) {
        await initBackend({ backend, fastPaths: false });
        off.push(...timeRuns(() => tf.dispose(run()), 1, round === 0 ? 1 : 0));
        await initBackend({ backend });
        on.push(...timeRuns(() => tf.dispose(run()), quick ? 2 : 3, round === 0 ? 1 : 0));
      }
      const offMs = Math.min(...off);
      const onMs = Math.min(...on);
      rows.push({ name: c.name, offMs, onMs, speedup: offMs / onMs });
      tf.dispose(inputs);
    }
    console.log('\nMatmul fast paths on wasm (best ms, same process)');
    console.log(markdownTable(['operation', 'tfjs ms', 'fast path ms', 'speed-up'], rows.map((r) => [r.name, fixed(r.offMs), fixed(r.onMs), `${fixed(r.speedup)}x`])));
  }

  const out = writeResults('matmul', {
    ceilingGflops: ceiling,
    cpuCeilingGflops: cpuCeiling,
    chimeraGflops: chimera,
    chimeraCpuGflops: chimeraCpu,
    torch,
    torchMissing: torch.length === 0,
    fastPaths: rows,
  });
  console.log(`\nceiling (best 2-D rate): ${fixed(ceiling)} GFLOP/s (by CPU time: ${fixed(cpuCeiling)})\nwrote ${out}`);
}

await main();
