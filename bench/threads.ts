/**
 * Threads benchmark: the width-256 LLM training step and a 2-D matmul on wasm with 1 and with 2 threads
 * (initBackend({ threads })). A process starts wasm once, so each thread count runs in its own child process,
 * one after the other. Besides wall time it reports the busiest thread's CPU time (Linux /proc): on a machine
 * whose cores are shared with other work, that is the wall time the run would take with its cores free.
 *
 *   npx vite-node bench/threads.ts           # optional: --quick
 *
 * Prints a table and writes bench/results/threads.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AdamW, initBackend, manualSeed, tf, type Module } from '@chimera/core';
import { CausalLM, causalLMLoss, llamaConfig, shiftedTargets } from '@chimera/llm';
import { BENCH_DIR, fixed, flag, markdownTable, option, writeResults } from './common';
import { join } from 'node:path';

const quick = flag('quick');

interface ChildResult {
  threads: number;
  reasons: string[];
  matmul: Timing & { gflops: number; criticalGflops: number | null };
  step: Timing;
  loss: number;
}

interface Timing {
  wallMs: number;
  /** CPU time of the busiest thread (null where /proc is unavailable). */
  criticalMs: number | null;
  cpuMs: number;
}

/** CPU milliseconds per thread of this process (Linux), keyed by thread id. */
function threadCpu(): Map<string, number> | null {
  if (!existsSync('/proc/self/task')) return null;
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(fields[11]) + Number(fields[12])) * 10); // utime + stime, in 10 ms ticks
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Best (least wall time) of `reps` runs of fn, with its busiest thread's CPU time. */
function measure(fn: () => void, reps: number): Timing {
  let best: Timing | null = null;
  for (let i = 0; i < reps; i++) {
    const before = threadCpu();
    const cpu = process.cpuUsage();
    const start = performance.now();
    fn();
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const after = threadCpu();
    const criticalMs = before && after ? Math.max(...[...after].map(([tid, ms]) => ms - (before.get(tid) ?? 0))) : null;
    const timing = { wallMs, criticalMs, cpuMs: (used.user + used.system) / 1000 };
    if (!best || timing.wallMs < best.wallMs) best = timing;
  }
  return best!;
}

async function child(threads: number): Promise<void> {
  const report = await initBackend({ backend: 'wasm', threads });
  // Matmul: 10 products of [1024,256] @ [256,688] with a fresh right-hand side (as in training).
  const a = tf.randomNormal([1024, 256]);
  const b = tf.randomNormal([256, 688]);
  const products = () => {
    for (let i = 0; i < 10; i++) tf.dispose(tf.tidy(() => tf.matMul(a, tf.add(b, 0))));
  };
  products();
  const matmul = measure(products, 3);
  const flops = 10 * 2 * 1024 * 256 * 688;

  manualSeed(0);
  const config = llamaConfig({ vocabSize: 512, hiddenSize: 256, numLayers: 4, numHeads: 4, intermediateSize: 688, maxPositionEmbeddings: 128 });
  const model = new CausalLM(config);
  const optimizer = new AdamW(model as Module);
  const ids = tf.tensor2d(Array.from({ length: 8 * 128 }, (_, i) => (i * 7919 + 13) % 512), [8, 128], 'int32');
  const { targets, mask } = shiftedTargets(ids);
  const variables = model.namedParameters().map(([, v]) => v);
  let loss = 0;
  const step = () => {
    const { value, grads } = tf.variableGrads(() => causalLMLoss(model.forward({ inputIds: ids }).logits, targets, mask), variables);
    optimizer.applyGradients(grads);
    loss = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const stepTiming = measure(step, quick ? 1 : 2);
  const result: ChildResult = {
    threads: report.threads,
    reasons: report.reasons,
    matmul: { ...matmul, gflops: flops / matmul.wallMs / 1e6, criticalGflops: matmul.criticalMs ? flops / matmul.criticalMs / 1e6 : null },
    step: stepTiming,
    loss,
  };
  console.log(JSON.stringify(result));
}

function main(): void {
  const self = fileURLToPath(import.meta.url);
  const viteNode = join(BENCH_DIR, '..', 'node_modules', '.bin', 'vite-node');
  const results: ChildResult[] = [];
  for (const threads of [1, 2]) {
    const run = spawnSync(viteNode, [self, '--child', String(threads), ...(quick ? ['--quick'] : [])], { encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = run.stdout.trim().split('\n').at(-1) ?? '';
    if (run.status !== 0 || !line.startsWith('{')) {
      console.log(`threads ${threads}: child failed (exit ${run.status})\n${run.stdout}\n${run.stderr}`);
      process.exitCode = 1;
      return;
    }
    results.push(JSON.parse(line) as ChildResult);
  }
  const [one, two] = results as [ChildResult, ChildResult];
  const ms = (t: Timing) => `${fixed(t.wallMs, 0)} (${fixed(t.criticalMs, 0)})`;
  console.log(`threads: ${two.reasons.at(-1)}; losses ${one.loss} and ${two.loss} (${one.loss === two.loss ? 'identical' : 'DIFFERENT'})`);
  console.log(
    markdownTable(
      ['work', '1 thread ms (busiest thread CPU)', '2 threads ms (busiest thread CPU)', 'speed-up wall', 'speed-up with free cores'],
      [
        ['10 matmuls [1024,256]@[256,688]', ms(one.matmul), ms(two.matmul), `${fixed(one.matmul.wallMs / two.matmul.wallMs, 2)}x`,
          one.matmul.criticalMs && two.matmul.criticalMs ? `${fixed(one.matmul.criticalMs / two.matmul.criticalMs, 2)}x` : '-'],
        ['train step, width 256, batch 8 x 128', ms(one.step), ms(two.step), `${fixed(one.step.wallMs / two.step.wallMs, 2)}x`,
          one.step.criticalMs && two.step.criticalMs ? `${fixed(one.step.criticalMs / two.step.criticalMs, 2)}x` : '-'],
      ],
    ),
  );
  console.log('"with free cores": ratio of the busiest thread\'s CPU time, i.e. the wall time when no other work competes for the cores.');
  console.log(`wrote ${writeResults('threads', { results, identicalLoss: one.loss === two.loss })}`);
  if (one.loss !== two.loss) process.exitCode = 1;
}

if (option('child')) await child(Number(option('child')));
else main();
