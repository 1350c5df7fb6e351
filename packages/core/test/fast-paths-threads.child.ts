// The workload of fast-paths-threads.test.ts: starts wasm with the requested threads (a process can start wasm only
// once), runs matmuls, a convolution with its gradients, Softmax, Sigmoid and a few training steps, each large enough
// for the thread policy to split it (thread-policy.ts: >= 1 MFLOP, >= 16K elements), and returns the thread count and
// a hash of every output. With `switching` (the default 'auto' policy), the policy is forced between 1 and 2 threads
// between the pieces. Run as a script with CHIMERA_THREADS_CHILD=<threads> (the test's child process) it prints that
// as one JSON line.
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { forceOthersLoad, threadPolicyStatus } from '../src/runtime/thread-policy';
import { Rng, manualSeed } from '../src/runtime/random';
import { Linear } from '../src/nn/linear';
import { Attention } from '../src/nn/attention';
import { AdamW } from '../src/training/adamw';

export interface WorkloadResult {
  threads: number;
  threadMode: string;
  reasons: string[];
  hash: string;
  /** Thread counts the policy ran large operations on, in order (switching runs only). */
  counts: number[];
}

export async function threadsWorkload(threads: number | 'auto', switching = false): Promise<WorkloadResult> {
  const report = await initBackend({ backend: 'wasm', threads });
  const counts: number[] = [];
  let next = 0;
  const turn = () => {
    if (!switching) return;
    forceOthersLoad(next++ % 2 === 0 ? 0 : 1, true); // 0 other cores busy: 2 threads; 1: 1 thread
    counts.push(threadPolicyStatus()!.threads);
  };
  const rng = new Rng(5);
  const random = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
  const hash = createHash('sha256');
  const add = (t: tf.Tensor) => hash.update(Buffer.from((t.dataSync() as Float32Array).buffer));

  turn();
  tf.tidy(() => {
    add(tf.matMul(random([300, 200]), random([200, 250])));
    add(tf.matMul(random([4, 2, 128, 96]), random([4, 2, 96, 128])));
  });
  turn();
  tf.tidy(() => {
    add(tf.softmax(random([64, 512])));
    add(tf.sigmoid(random([128, 256])));
    const x = random([2, 32, 32, 16]) as tf.Tensor4D;
    const w = random([3, 3, 16, 32]) as tf.Tensor4D;
    add(tf.conv2d(x, w, 1, 'same'));
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))))([x, w]);
    add(gx!);
    add(gw!);
  });
  manualSeed(3);
  const proj = new Linear(128, 128);
  const attn = new Attention({ dim: 128, numHeads: 4, causal: true });
  const named: [string, tf.Variable][] = [...proj.namedParameters(), ...attn.namedParameters().map(([n, v]) => [`attn.${n}`, v] as [string, tf.Variable])];
  const optimizer = new AdamW(named);
  const x = random([4, 64, 128]);
  for (let step = 0; step < 3; step++) {
    turn();
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(attn.forward(proj.forward(x)))) as tf.Scalar, named.map(([, v]) => v));
    optimizer.applyGradients(grads);
    add(value);
    tf.dispose([value, ...Object.values(grads)]);
  }
  for (const [, v] of named) add(v);
  optimizer.dispose();
  proj.dispose();
  attn.dispose();
  x.dispose();
  if (switching) forceOthersLoad(null);
  return { threads: report.threads, threadMode: report.threadMode, reasons: report.reasons, hash: hash.digest('hex'), counts };
}

// No explicit exit: the process must end on its own (the thread pool's workers must not keep it alive).
const childThreads = process.env.CHIMERA_THREADS_CHILD; // set by the test when it runs this file as a script
if (childThreads) console.log(JSON.stringify(await threadsWorkload(childThreads === 'auto' ? 'auto' : Number(childThreads))));
