/**
 * Convolution benchmark: a VQ-VAE-shaped conv stack's training step and a Whisper-shaped conv1d front end's forward
 * pass, each against its PyTorch twin (bench/torch/conv_vqvae.py, conv_whisper.py) on 1 and 2 threads, and what the
 * convolution-gradient fast paths (packages/core/src/runtime/conv-gradients.ts) buy over the kernels they replace,
 * timed with them off and on in the same process, and each of the stack's convolutions (forward, input and filter
 * gradients) against the matmul rate of the same shape.
 *
 *   npx vite-node bench/conv.ts        # optional: --backend cpu|wasm, --quick, --batch 8
 *
 * Prints tables and writes bench/results/conv.json.
 */
import { AdamW, Conv1d, Conv2d, GroupNorm, Module, ModuleList, Upsample, gelu, initBackend, manualSeed, silu, tf, type BackendName } from '@chimera/core';
import { TORCH_MISSING, fixed, flag, markdownTable, matmulRates, option, runTorch, timeWallAndCpu, torchRuns, writeResults } from './common';
import { profileKernels, type KernelProfile } from './kernel-profile';

const backendArg = option('backend') as BackendName | undefined;
const quick = flag('quick');
const BATCH = Number(option('batch') ?? 8);
const SIZE = 64;
const GROUPS = 8;
/** conv_in's width, then the four downsampling convs' (64x64 -> 4x4); the decoder mirrors them. */
const WIDTHS = [32, 32, 64, 128, 128];
const WHISPER = { mels: 80, frames: 3000, width: 384 };

/** The fast paths of this benchmark: off in the "tfjs" timings, so those run the kernels they replace. */
const CONV_FAST_PATHS = ['wasm-conv-filter-gradient', 'wasm-conv-input-gradient', 'wasm-depthwise-gradients'];

/** GroupNorm + SiLU, then (decoder) nearest 2x upsampling, then a 3x3 conv with padding 1. */
class Block extends Module {
  readonly norm: GroupNorm;
  readonly conv: Conv2d;
  readonly upsample: Upsample | null;

  constructor(cin: number, cout: number, options: { stride?: number; upsample?: boolean } = {}) {
    super();
    this.norm = this.addModule('norm', new GroupNorm(GROUPS, cin));
    this.upsample = options.upsample ? this.addModule('upsample', new Upsample({ scaleFactor: 2 })) : null;
    this.conv = this.addModule('conv', new Conv2d(cin, cout, 3, { stride: options.stride ?? 1, padding: 1 }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = silu(this.norm.forward(x));
      if (this.upsample) h = this.upsample.forward(h);
      return this.conv.forward(h);
    });
  }
}

/** The VQ-VAE-shaped autoencoder (no quantizer: only convolutions, norms and the optimizer are compared). */
class ConvStack extends Module {
  readonly convIn: Conv2d;
  readonly blocks: ModuleList<Block>;

  constructor() {
    super();
    this.convIn = this.addModule('conv_in', new Conv2d(3, WIDTHS[0]!, 3, { padding: 1 }));
    const reversed = [...WIDTHS].reverse();
    const specs: [number, number, { stride?: number; upsample?: boolean }][] = [
      ...WIDTHS.slice(1).map((w, i) => [WIDTHS[i]!, w, { stride: 2 }] as [number, number, { stride: number }]),
      ...reversed.slice(1).map((w, i) => [reversed[i]!, w, { upsample: true }] as [number, number, { upsample: boolean }]),
      [WIDTHS[0]!, 3, {}],
    ];
    this.blocks = this.addModule('blocks', new ModuleList(specs.map(([cin, cout, opts]) => new Block(cin, cout, opts))));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.blocks.items.reduce((h: tf.Tensor, block) => block.forward(h), this.convIn.forward(x)));
  }
}

/** Multiply-adds x 2 of every convolution in one forward pass of the stack (the matmul work a step repeats 3x). */
function convFlops(): { forward: number; step: number } {
  let size = SIZE;
  let forward = 2 * BATCH * size * size * 27 * WIDTHS[0]!;
  const firstInputGradient = forward; // conv_in's input gradient is not computed (the images are not trained)
  const layers: [number, number, number][] = []; // [output size, cin, cout]
  for (let i = 1; i < WIDTHS.length; i++) layers.push([(size /= 2), WIDTHS[i - 1]!, WIDTHS[i]!]);
  const reversed = [...WIDTHS].reverse();
  for (let i = 1; i < reversed.length; i++) layers.push([(size *= 2), reversed[i - 1]!, reversed[i]!]);
  layers.push([size, WIDTHS[0]!, 3]);
  for (const [s, cin, cout] of layers) forward += 2 * BATCH * s * s * 9 * cin * cout;
  return { forward, step: 3 * forward - firstInputGradient };
}

interface TorchTiming {
  label: string;
  threads: number;
  seconds: number;
  cpuSeconds: number;
}

function torchTimings(script: string, args: (string | number)[]): TorchTiming[] {
  const out: TorchTiming[] = [];
  for (const run of torchRuns()) {
    for (const threads of [1, 2]) {
      const result = runTorch<{ best_seconds: number; best_cpu_seconds: number }>(script, [...args, '--threads', threads], run.env);
      if (result) out.push({ label: run.label, threads, seconds: result.best_seconds, cpuSeconds: result.best_cpu_seconds });
    }
  }
  return out;
}

interface StackResult {
  batch: number;
  seconds: number;
  cpuSeconds: number;
  stepSeconds: number[];
  convGflopPerStep: number;
  profile: KernelProfile;
  torch: TorchTiming[];
}

async function measureStack(backend: BackendName): Promise<StackResult> {
  await initBackend({ backend });
  manualSeed(0);
  const model = new ConvStack();
  const variables = model.trainableVariables();
  const optimizer = new AdamW(model, { learningRate: 1e-3, weightDecay: 0.01 });
  const images = tf.randomUniform([BATCH, SIZE, SIZE, 3], -1, 1);
  const step = () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.squaredDifference(model.forward(images), images)) as tf.Scalar, variables);
    optimizer.applyGradients(grads);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  step(); // warm-up: first-use costs
  const timed = Array.from({ length: quick ? 1 : 3 }, () => timeWallAndCpu(step));
  const profile = profileKernels(step);
  optimizer.dispose();
  model.dispose();
  images.dispose();
  const steps = quick ? 1 : 3;
  return {
    batch: BATCH,
    seconds: Math.min(...timed.map((t) => t.wallMs)) / 1000,
    cpuSeconds: Math.min(...timed.map((t) => t.cpuMs)) / 1000,
    stepSeconds: timed.map((t) => t.wallMs / 1000),
    convGflopPerStep: convFlops().step / 1e9,
    profile,
    torch: torchTimings('conv_vqvae.py', ['--batch', BATCH, '--steps', steps, '--warmup', 1]),
  };
}

interface FrontEndResult {
  seconds: number;
  cpuSeconds: number;
  /** The same convolutions through tf.conv1d ('same' padding) instead of the Conv1d layers, for comparison. */
  conv1dOpSeconds: number;
  gflop: number;
  torch: TorchTiming[];
}

async function measureFrontEnd(backend: BackendName): Promise<FrontEndResult> {
  await initBackend({ backend });
  manualSeed(0);
  const { mels, frames, width } = WHISPER;
  const conv1 = new Conv1d(mels, width, 3, { padding: 1 });
  const conv2 = new Conv1d(width, width, 3, { stride: 2, padding: 1 });
  const mel = tf.randomNormal([1, frames, mels]);
  const layers = () => tf.tidy(() => gelu(conv2.forward(gelu(conv1.forward(mel))))).dataSync();
  const op = () =>
    tf.tidy(() => {
      const h = gelu(tf.add(tf.conv1d(mel as tf.Tensor3D, conv1.weight as tf.Tensor3D, 1, 'same'), conv1.bias!));
      return gelu(tf.add(tf.conv1d(h as tf.Tensor3D, conv2.weight as tf.Tensor3D, 2, 'same'), conv2.bias!));
    }).dataSync();
  // Alternating rounds, best of each: on a shared machine the two see the same conditions.
  layers();
  op();
  const runs = { layers: [] as { wallMs: number; cpuMs: number }[], op: [] as { wallMs: number; cpuMs: number }[] };
  for (let i = 0; i < (quick ? 2 : 6); i++) {
    runs.layers.push(timeWallAndCpu(() => void layers()));
    runs.op.push(timeWallAndCpu(() => void op()));
  }
  const best = (list: { wallMs: number; cpuMs: number }[]) => ({ wall: Math.min(...list.map((r) => r.wallMs)) / 1000, cpu: Math.min(...list.map((r) => r.cpuMs)) / 1000 });
  const viaLayers = best(runs.layers);
  const viaOp = best(runs.op);
  conv1.dispose();
  conv2.dispose();
  mel.dispose();
  const gflop = (2 * frames * 3 * mels * width + 2 * (frames / 2) * 3 * width * width) / 1e9;
  return {
    seconds: viaLayers.wall,
    cpuSeconds: viaLayers.cpu,
    conv1dOpSeconds: viaOp.wall,
    gflop,
    torch: torchTimings('conv_whisper.py', ['--steps', quick ? 3 : 10, '--warmup', 2]),
  };
}

interface KernelCase {
  name: string;
  gflop: number;
  build: () => { inputs: tf.Tensor[]; run: () => tf.Tensor };
}

const attrs = (strides: number, filterShape: number[]) => ({ strides: [strides, strides], pad: [[0, 0], [1, 1], [1, 1], [0, 0]], dataFormat: 'NHWC', filterShape });

/**
 * Each fast path at a shape of the conv stack, with the kernel it replaces. Sizes are kept small enough that the
 * cpu fill-in (0.02 GFLOP/s on the filter gradient) finishes in a few seconds.
 */
const KERNEL_CASES: KernelCase[] = [
  {
    name: 'Conv2DBackpropFilter 3x3 stride 1, [2,32,32,32] -> 32',
    gflop: (2 * 2 * 32 * 32 * 288 * 32) / 1e9,
    build: () => {
      const x = tf.randomNormal([2, 32, 32, 32]);
      const dy = tf.randomNormal([2, 32, 32, 32]);
      return { inputs: [x, dy], run: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs(1, [3, 3, 32, 32]) as never) as tf.Tensor };
    },
  },
  {
    name: 'Conv2DBackpropFilter 3x3 stride 2, [2,32,32,32] -> 64',
    gflop: (2 * 2 * 16 * 16 * 288 * 64) / 1e9,
    build: () => {
      const x = tf.randomNormal([2, 32, 32, 32]);
      const dy = tf.randomNormal([2, 16, 16, 64]);
      return { inputs: [x, dy], run: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs(2, [3, 3, 32, 64]) as never) as tf.Tensor };
    },
  },
  {
    name: 'Conv2DBackpropInput 3x3 stride 1, [8,32,32,64] <- 32',
    gflop: (2 * 8 * 32 * 32 * 576 * 32) / 1e9,
    build: () => {
      const dy = tf.randomNormal([8, 32, 32, 32]);
      const w = tf.randomNormal([3, 3, 64, 32]);
      return { inputs: [dy, w], run: () => tf.conv2dTranspose(dy as tf.Tensor4D, w as tf.Tensor4D, [8, 32, 32, 64], 1, 'same') };
    },
  },
  {
    name: 'Conv2DBackpropInput 3x3 stride 2, [8,64,64,32] <- 64',
    gflop: (2 * 8 * 32 * 32 * 288 * 64) / 1e9,
    build: () => {
      const dy = tf.randomNormal([8, 32, 32, 64]);
      const w = tf.randomNormal([3, 3, 32, 64]);
      return { inputs: [dy, w], run: () => tf.conv2dTranspose(dy as tf.Tensor4D, w as tf.Tensor4D, [8, 64, 64, 32], 2, 'same') };
    },
  },
  {
    name: 'depthwise 3x3 gradients (filter + input), [4,32,32,64]',
    gflop: (2 * 2 * 4 * 32 * 32 * 9 * 64) / 1e9,
    build: () => {
      const x = tf.randomNormal([4, 32, 32, 64]);
      const w = tf.randomNormal([3, 3, 64, 1]);
      const r = tf.randomNormal([4, 32, 32, 64]);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), r)));
      return { inputs: [x, w, r], run: () => tf.tidy(() => tf.addN(grads([x, w]).map((g) => tf.sum(g)))) };
    },
  },
];

interface KernelResult {
  name: string;
  gflop: number;
  offMs: number;
  onMs: number;
  speedup: number;
}

/** Fast paths on and off, in two alternating rounds of the same process; best of each side. */
async function measureKernels(backend: BackendName): Promise<KernelResult[]> {
  if (backend !== 'wasm') return [];
  const others = (await initBackend({ backend })).fastPaths.filter((id) => !CONV_FAST_PATHS.includes(id));
  const results: KernelResult[] = [];
  for (const c of KERNEL_CASES) {
    const { inputs, run } = c.build();
    const time = (reps: number) => {
      tf.dispose(run()); // first use
      let best = Infinity;
      for (let i = 0; i < reps; i++) {
        const start = performance.now();
        const out = run();
        out.dataSync();
        best = Math.min(best, performance.now() - start);
        out.dispose();
      }
      return best;
    };
    let offMs = Infinity;
    let onMs = Infinity;
    for (let round = 0; round < (quick ? 1 : 2); round++) {
      await initBackend({ backend, fastPaths: others });
      offMs = Math.min(offMs, time(1));
      await initBackend({ backend });
      onMs = Math.min(onMs, time(3));
    }
    tf.dispose(inputs);
    results.push({ name: c.name, gflop: c.gflop, offMs, onMs, speedup: offMs / onMs });
  }
  return results;
}

interface LayerResult {
  name: string;
  mflop: number;
  matmulGflops: number;
  forwardGflops: number;
  inputGradientGflops: number;
  filterGradientGflops: number;
}

/**
 * Every conv of the stack on its own: forward (wasm's XNNPACK kernel, no fast path), input gradient and filter
 * gradient (the fast paths), each against the 2-D matmul of the same size ([M, K] @ [K, N], fresh right operand),
 * the rate XNNPACK reaches on that shape. Best of 4 each; the time of the fresh weight copy is subtracted.
 */
async function measureLayers(backend: BackendName): Promise<LayerResult[]> {
  await initBackend({ backend });
  const layers: [string, number, number, number, number][] = []; // name, input size, cin, cout, stride
  layers.push(['conv_in', SIZE, 3, WIDTHS[0]!, 1]);
  let size = SIZE;
  for (let i = 1; i < WIDTHS.length; i++, size /= 2) layers.push([`down${i}`, size, WIDTHS[i - 1]!, WIDTHS[i]!, 2]);
  const reversed = [...WIDTHS].reverse();
  for (let i = 1; i < reversed.length; i++) layers.push([`up${i}`, (size *= 2), reversed[i - 1]!, reversed[i]!, 1]);
  layers.push(['conv_out', SIZE, WIDTHS[0]!, 3, 1]);
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [1, 1], [1, 1], [0, 0]];
  const bestMs = (fn: () => tf.Tensor) => {
    tf.dispose(fn());
    let best = Infinity;
    for (let i = 0; i < (quick ? 2 : 4); i++) {
      const start = performance.now();
      const out = fn();
      out.dataSync();
      best = Math.min(best, performance.now() - start);
      out.dispose();
    }
    return best;
  };
  return layers.map(([name, s, cin, cout, stride]) => {
    const x = tf.randomNormal([BATCH, s, s, cin]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, cin, cout]) as tf.Tensor4D;
    const outSize = s / stride;
    const dy = tf.randomNormal([BATCH, outSize, outSize, cout]) as tf.Tensor4D;
    const m = BATCH * outSize * outSize;
    const k = 9 * cin;
    const flops = 2 * m * k * cout;
    const copyMs = bestMs(() => tf.add(w, 0));
    const forwardMs = bestMs(() => tf.tidy(() => tf.conv2d(x, tf.add(w, 0) as tf.Tensor4D, stride, pad))) - copyMs;
    const inputMs = bestMs(() => tf.conv2dTranspose(dy, w, [BATCH, s, s, cin], stride, pad as never));
    const filterMs = bestMs(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: [stride, stride], pad, dataFormat: 'NHWC', filterShape: [3, 3, cin, cout] } as never) as tf.Tensor);
    tf.dispose([x, w, dy]);
    const rate = (ms: number) => flops / Math.max(ms, 1e-3) / 1e6;
    return {
      name: `${name} [${BATCH},${s},${s},${cin}] -> ${cout}${stride > 1 ? ' stride 2' : ''}`,
      mflop: flops / 1e6,
      matmulGflops: matmulRates(m, k, cout, quick ? 2 : 4).wall,
      forwardGflops: rate(forwardMs),
      inputGradientGflops: rate(inputMs),
      filterGradientGflops: rate(filterMs),
    };
  });
}

async function main(): Promise<void> {
  const report = await initBackend(backendArg ? { backend: backendArg } : {});
  const backend = report.backend;
  console.log(`backend: ${backend}; fast paths: ${report.fastPaths.join(', ') || 'none'}`);

  const stack = await measureStack(backend);
  const frontEnd = await measureFrontEnd(backend);
  const kernels = await measureKernels(backend);
  const layers = await measureLayers(backend);

  const torchRow = (label: string, seconds: number, cpuSeconds: number, torch: TorchTiming[]) =>
    torch.map((t) => [label, `torch ${t.threads} thread${t.threads > 1 ? 's' : ''}`, fixed(t.seconds * 1000, 0), fixed(t.seconds / seconds, 2), fixed(t.cpuSeconds / cpuSeconds, 2)]);
  console.log(`\nVQ-VAE conv stack train step (batch ${BATCH}, ${SIZE}x${SIZE} RGB, widths ${WIDTHS.join('/')}, GroupNorm(${GROUPS}) + SiLU, AdamW) and Whisper front end forward (1 x ${WHISPER.frames} x ${WHISPER.mels} -> ${WHISPER.width}); ratio = PyTorch time / Chimera time`);
  console.log(
    markdownTable(
      ['row', 'engine', 'ms', 'vs torch (wall)', 'vs torch (CPU)'],
      [
        ['conv stack train step', 'chimera', `${fixed(stack.seconds * 1000, 0)} (CPU ${fixed(stack.cpuSeconds * 1000, 0)})`, '', ''],
        ...torchRow('conv stack train step', stack.seconds, stack.cpuSeconds, stack.torch),
        ['Whisper front end forward', 'chimera (Conv1d layers)', `${fixed(frontEnd.seconds * 1000, 0)} (CPU ${fixed(frontEnd.cpuSeconds * 1000, 0)})`, '', ''],
        ['Whisper front end forward', 'chimera (tf.conv1d)', fixed(frontEnd.conv1dOpSeconds * 1000, 0), '', ''],
        ...torchRow('Whisper front end forward', frontEnd.seconds, frontEnd.cpuSeconds, frontEnd.torch),
      ],
    ),
  );
  if (stack.torch.length === 0) console.log(TORCH_MISSING);
  console.log(`conv stack: ${fixed(stack.convGflopPerStep, 2)} GFLOP of convolutions per step, ${fixed(stack.convGflopPerStep / stack.seconds)} GFLOP/s`);

  console.log('\nWhere the conv stack step goes (CPU ms per kernel, one step)');
  const top = stack.profile.kernels.slice(0, 12);
  const outside = stack.profile.cpuMs - stack.profile.kernelMs;
  console.log(
    markdownTable(
      ['kernel', 'ms', 'calls', 'share'],
      [...top.map((k) => [k.name, fixed(k.ms), String(k.calls), `${fixed((100 * k.ms) / stack.profile.cpuMs, 0)}%`]), ['(outside kernels)', fixed(outside), '', `${fixed((100 * outside) / stack.profile.cpuMs, 0)}%`]],
    ),
  );

  if (kernels.length > 0) {
    console.log('\nConvolution-gradient fast paths: the kernels they replace (tfjs: cpu fill-in or wasm loop) vs the fast paths');
    console.log(markdownTable(['kernel', 'tfjs ms', 'fast ms', 'speed-up', 'fast GFLOP/s'], kernels.map((k) => [k.name, fixed(k.offMs), fixed(k.onMs), `${fixed(k.speedup)}x`, fixed(k.gflop / (k.onMs / 1000))])));
  }
  console.log('\nThe stack\'s convolutions one by one (GFLOP/s): the 2-D matmul of the same size, the forward pass (no fast path), the input and filter gradients (fast paths)');
  console.log(
    markdownTable(
      ['layer', 'MFLOP', 'matmul', 'forward', 'input grad', 'filter grad'],
      layers.map((l) => [l.name, fixed(l.mflop, 0), fixed(l.matmulGflops), fixed(l.forwardGflops), fixed(l.inputGradientGflops), fixed(l.filterGradientGflops)]),
    ),
  );

  console.log(`\nwrote ${writeResults('conv', { stack, frontEnd, kernels, layers, fastPaths: report.fastPaths })}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
