/**
 * Where the time goes: runs a function with every kernel of the current backend wrapped in a timer, then
 * restores the kernels. Gives time per kernel name, the matmul FLOPs executed, and the time spent outside
 * kernels (tfjs's engine, autograd bookkeeping, JS ops). Times are CPU time of the process (wall time on a
 * shared machine includes waiting for a core), with the wall time of the whole run alongside.
 */
import { tf } from '@chimera/core';

export interface KernelProfile {
  wallMs: number;
  /** CPU time of the whole run, and inside kernels. */
  cpuMs: number;
  kernelMs: number;
  /** Per kernel name (CPU ms), most expensive first. */
  kernels: { name: string; ms: number; calls: number }[];
  /** FLOPs of the BatchMatMul calls (2 * output size * inner size). */
  matmulFlops: number;
  matmulMs: number;
}

const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

function matmulFlops(inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown>, output: tf.TensorInfo): number {
  const a = inputs.a!;
  const inner = attrs.transposeA ? a.shape[a.shape.length - 2]! : a.shape[a.shape.length - 1]!;
  return 2 * output.shape.reduce((x, y) => x * y, 1) * inner;
}

export function profileKernels(fn: () => void): KernelProfile {
  const backend = tf.getBackend();
  const originals = tf.getKernelsForBackend(backend);
  const stats = new Map<string, { ms: number; calls: number }>();
  let flops = 0;
  let matmulMs = 0;
  for (const config of originals) {
    const inner = config.kernelFunc;
    tf.unregisterKernel(config.kernelName, backend);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        const start = cpuNow();
        const result = inner(args);
        const ms = cpuNow() - start;
        const entry = stats.get(config.kernelName) ?? { ms: 0, calls: 0 };
        entry.ms += ms;
        entry.calls++;
        stats.set(config.kernelName, entry);
        if (config.kernelName === 'BatchMatMul') {
          flops += matmulFlops(args.inputs as Record<string, tf.TensorInfo>, args.attrs as Record<string, unknown>, result as tf.TensorInfo);
          matmulMs += ms;
        }
        return result;
      },
    });
  }
  const start = performance.now();
  const cpuStart = cpuNow();
  try {
    fn();
  } finally {
    for (const config of originals) {
      tf.unregisterKernel(config.kernelName, backend);
      tf.registerKernel(config);
    }
  }
  const cpuMs = cpuNow() - cpuStart;
  const wallMs = performance.now() - start;
  const kernels = [...stats].map(([name, s]) => ({ name, ...s })).sort((a, b) => b.ms - a.ms);
  return { wallMs, cpuMs, kernelMs: kernels.reduce((s, k) => s + k.ms, 0), kernels, matmulFlops: flops, matmulMs };
}
