/**
 * Memory benchmark: 100 training steps of a small CausalLM (width 128, 2 layers, vocab 256, batch 4 x 64 tokens,
 * AdamW) with peak RSS, the wasm heap, and tfjs's tensor and byte counts sampled every 10 steps. Tensor and byte
 * counts must not grow after the first step (exit code 1 if they do); RSS and the wasm heap should level off.
 *
 *   npx vite-node bench/memory.ts            # optional: --backend cpu|wasm, --quick (30 steps), --steps N
 *
 * Prints a table and writes bench/results/memory.json.
 */
import { AdamW, initBackend, manualSeed, tf, type BackendName, type Module } from '@chimera/core';
import { CausalLM, causalLMLoss, llamaConfig, shiftedTargets } from '@chimera/llm';
import { fixed, flag, markdownTable, option, writeResults } from './common';

const backendArg = option('backend') as BackendName | undefined;
const steps = Number(option('steps') ?? (flag('quick') ? 30 : 100));
const MB = 1024 * 1024;

interface Sample {
  step: number;
  rssMB: number;
  jsHeapMB: number;
  wasmHeapMB: number | null;
  numTensors: number;
  numBytes: number;
  loss: number;
}

function wasmHeapMB(): number | null {
  const backend = tf.engine().backend as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8 ? backend.wasm.HEAPU8.length / MB : null;
}

async function main(): Promise<void> {
  const report = await initBackend(backendArg ? { backend: backendArg } : {});
  manualSeed(0);
  const config = llamaConfig({ vocabSize: 256, hiddenSize: 128, numLayers: 2, numHeads: 2, intermediateSize: 344, maxPositionEmbeddings: 64 });
  const model = new CausalLM(config);
  const optimizer = new AdamW(model as Module, { learningRate: 1e-3 });
  const ids = tf.tensor2d(Array.from({ length: 4 * 64 }, (_, i) => (i * 31 + 7) % config.vocabSize), [4, 64], 'int32');
  const { targets, mask } = shiftedTargets(ids);
  const variables = model.namedParameters().map(([, v]) => v);
  const step = () => {
    const { value, grads } = tf.variableGrads(() => causalLMLoss(model.forward({ inputIds: ids }).logits, targets, mask), variables);
    optimizer.applyGradients(grads);
    const loss = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };

  const samples: Sample[] = [];
  let peakRss = process.memoryUsage().rss;
  const start = performance.now();
  for (let i = 1; i <= steps; i++) {
    const loss = step();
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (i === 1 || i % 10 === 0) {
      const memory = tf.memory();
      const usage = process.memoryUsage();
      samples.push({ step: i, rssMB: usage.rss / MB, jsHeapMB: usage.heapUsed / MB, wasmHeapMB: wasmHeapMB(), numTensors: memory.numTensors, numBytes: memory.numBytes, loss });
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const tensorGrowth = last.numTensors - first.numTensors;
  const byteGrowth = last.numBytes - first.numBytes;
  const tenth = samples.find((s) => s.step === 10) ?? first;

  console.log(`backend: ${report.backend}; ${steps} steps of a width-128, 2-layer CausalLM, batch 4 x 64, AdamW (${fixed(seconds, 1)} s)`);
  console.log(
    markdownTable(
      ['step', 'loss', 'RSS MB', 'JS heap MB', 'wasm heap MB', 'tensors', 'tensor MB'],
      samples.map((s) => [String(s.step), fixed(s.loss, 3), fixed(s.rssMB), fixed(s.jsHeapMB), fixed(s.wasmHeapMB), String(s.numTensors), fixed(s.numBytes / MB, 2)]),
    ),
  );
  console.log(`peak RSS ${fixed(peakRss / MB)} MB; RSS from step ${tenth.step} to ${last.step}: ${fixed(last.rssMB - tenth.rssMB, 1)} MB`);
  console.log(`tensors after step 1: ${first.numTensors}, after step ${last.step}: ${last.numTensors} (growth ${tensorGrowth}); bytes growth ${byteGrowth}`);

  const out = writeResults('memory', {
    steps,
    config,
    peakRssMB: peakRss / MB,
    rssGrowthMB: last.rssMB - tenth.rssMB,
    tensorGrowth,
    byteGrowth,
    samples,
  });
  console.log(`wrote ${out}`);
  optimizer.dispose();
  model.dispose();
  tf.dispose([ids, targets, mask]);
  if (tensorGrowth !== 0 || byteGrowth !== 0) {
    console.log('FAIL: tensors or bytes grew across training steps');
    process.exitCode = 1;
  }
}

await main();
