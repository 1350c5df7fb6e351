/**
 * Kernels the wasm backend lacks (ENGINE.md: the gradient of gather, conv filter gradients, einsum) are
 * filled by running the cpu backend's own kernel on copies of the inputs. One mechanism covers every
 * real-valued missing kernel, and each fill-in computes exactly what the cpu backend computes. Fast paths replace
 * the slow ones where they can (segment-sum.ts; conv-gradients.ts for NHWC float32 convolution gradients) and hand
 * every other case back to the fill-in, which therefore stays registered.
 */
import * as tf from '@tensorflow/tfjs';

/** Real-valued kernels that wasm lacks and training or common layers reach. */
export const WASM_FILL_IN_KERNELS = [
  'UnsortedSegmentSum',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'Einsum',
] as const;

interface DataStorage {
  readSync(dataId: object): tf.TypedArray | string[];
  write(values: tf.TypedArray, shape: number[], dtype: tf.DataType): object;
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap?(info: tf.TensorInfo): tf.TypedArray;
}

function delegateToCpu(kernelName: string): tf.KernelFunc | undefined {
  const cpuKernel = tf.getKernel(kernelName, 'cpu');
  if (!cpuKernel) return undefined;
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as unknown as DataStorage;
    const cpu = tf.findBackend('cpu') as unknown as DataStorage;
    const cpuInputs: Record<string, tf.TensorInfo> = {};
    const cpuIds: object[] = [];
    for (const [name, info] of Object.entries(inputs as Record<string, tf.TensorInfo>)) {
      const values = wasm.readSync(info.dataId) as tf.TypedArray;
      const dataId = cpu.write(values.slice(), info.shape, info.dtype);
      cpuIds.push(dataId);
      cpuInputs[name] = { dataId, shape: info.shape, dtype: info.dtype };
    }
    try {
      const result = cpuKernel.kernelFunc({ inputs: cpuInputs, backend: cpu as never, attrs });
      const outputs = Array.isArray(result) ? result : [result];
      const copied = outputs.map((out) => {
        const values = cpu.readSync(out.dataId) as tf.TypedArray;
        const target = wasm.makeOutput!(out.shape, out.dtype);
        wasm.typedArrayFromHeap!(target).set(values);
        cpu.disposeData(out.dataId, true);
        return target;
      });
      return Array.isArray(result) ? copied : copied[0]!;
    } finally {
      for (const id of cpuIds) cpu.disposeData(id, true);
    }
  };
}

/** Registers the cpu-delegating fill-ins on wasm; returns the names newly installed. Idempotent. */
export function installWasmFillIns(): string[] {
  const installed: string[] = [];
  for (const kernelName of WASM_FILL_IN_KERNELS) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    const kernelFunc = delegateToCpu(kernelName);
    if (!kernelFunc) continue;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
    installed.push(kernelName);
  }
  return installed;
}
