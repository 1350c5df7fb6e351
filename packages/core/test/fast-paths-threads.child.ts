// The workload of fast-paths-threads.test.ts: starts wasm with the requested threads (a process can start wasm only
// once), runs matmuls and a few training steps, and returns the thread count and a hash of every output. Run as a
// script with CHIMERA_THREADS_CHILD=<threads> (the test's child process) it prints that as one JSON line.
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { Rng, manualSeed } from '../src/runtime/random';
import { Linear } from '../src/nn/linear';
import { Attention } from '../src/nn/attention';
import { AdamW } from '../src/training/adamw';

export async function threadsWorkload(threads: number): Promise<{ threads: number; reasons: string[]; hash: string }> {
  const report = await initBackend({ backend: 'wasm', threads });
  const rng = new Rng(5);
  const random = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
  const hash = createHash('sha256');
  const add = (t: tf.Tensor) => hash.update(Buffer.from((t.dataSync() as Float32Array).buffer));

  tf.tidy(() => {
    add(tf.matMul(random([300, 200]), random([200, 250])));
    add(tf.matMul(random([4, 2, 64, 48]), random([4, 2, 48, 64])));
    add(tf.softmax(random([64, 100])));
    add(tf.conv2d(random([2, 12, 12, 8]) as tf.Tensor4D, random([3, 3, 8, 16]) as tf.Tensor4D, 1, 'same'));
  });
  manualSeed(3);
  const proj = new Linear(64, 64);
  const attn = new Attention({ dim: 64, numHeads: 4, causal: true });
  const named: [string, tf.Variable][] = [...proj.namedParameters(), ...attn.namedParameters().map(([n, v]) => [`attn.${n}`, v] as [string, tf.Variable])];
  const optimizer = new AdamW(named);
  const x = random([2, 32, 64]);
  for (let step = 0; step < 3; step++) {
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
  return { threads: report.threads, reasons: report.reasons, hash: hash.digest('hex') };
}

// No explicit exit: the process must end on its own (the thread pool's workers must not keep it alive).
const childThreads = process.env.CHIMERA_THREADS_CHILD; // set by the test when it runs this file as a script
if (childThreads) console.log(JSON.stringify(await threadsWorkload(Number(childThreads))));
