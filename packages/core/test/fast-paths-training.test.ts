import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { manualSeed } from '../src/runtime/random';
import { Module } from '../src/nn/module';
import { Embedding } from '../src/nn/embedding';
import { RMSNorm } from '../src/nn/norm';
import { Attention } from '../src/nn/attention';
import { GatedMLP } from '../src/nn/mlp';
import { Linear } from '../src/nn/linear';
import { RotaryEmbedding, sequentialPositions } from '../src/nn/rope';
import { AdamW } from '../src/training/adamw';

// A whole training step of a small Llama-style block (embedding, RMSNorm, RoPE + GQA causal attention, SwiGLU,
// LM head, gather-based cross-entropy: every op the LLM trains with) gives the same loss and gradients with the
// fast paths on wasm as tfjs's own kernels and gradients (fast paths off) on wasm and on cpu.

const VOCAB = 40;
const DIM = 32;

class TinyLM extends Module {
  readonly embed = this.addModule('embed', new Embedding(VOCAB, DIM, { std: 0.5 }));
  readonly norm1 = this.addModule('norm1', new RMSNorm(DIM));
  readonly attn = this.addModule('attn', new Attention({ dim: DIM, numHeads: 4, numKvHeads: 2, causal: true }));
  readonly norm2 = this.addModule('norm2', new RMSNorm(DIM));
  readonly mlp = this.addModule('mlp', new GatedMLP(DIM, 48));
  readonly head = this.addModule('head', new Linear(DIM, VOCAB));
  readonly rope = new RotaryEmbedding({ headDim: DIM / 4 });

  loss(ids: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const [batch, length] = ids.shape;
      const rotary = this.rope.forward(sequentialPositions(batch, length));
      const x = this.embed.forward(ids);
      const h = tf.add(x, this.attn.forward(this.norm1.forward(x), { rotary }));
      const out = tf.add(h, this.mlp.forward(this.norm2.forward(h)));
      const logits = tf.reshape(this.head.forward(out), [batch * length, VOCAB]);
      const rows = tf.mul(tf.range(0, batch * length, 1, 'int32'), tf.scalar(VOCAB, 'int32'));
      const picked = tf.gather(tf.reshape(logits, [-1]), tf.add(rows, tf.reshape(targets, [-1])));
      return tf.mean(tf.sub(tf.logSumExp(logits, -1), picked)) as tf.Scalar;
    });
  }
}

function batch(): { ids: tf.Tensor2D; targets: tf.Tensor2D } {
  const ids = Array.from({ length: 3 * 12 }, (_, i) => (i * 7 + 3) % VOCAB);
  return { ids: tf.tensor2d(ids, [3, 12], 'int32'), targets: tf.tensor2d(ids.map((v) => (v * 5 + 1) % VOCAB), [3, 12], 'int32') };
}

function lossAndGrads(model: TinyLM): { loss: number; grads: Map<string, Float32Array> } {
  const { ids, targets } = batch();
  const named = model.namedParameters();
  const { value, grads } = tf.variableGrads(() => model.loss(ids, targets), named.map(([, v]) => v));
  const out = new Map(named.map(([name, v]) => [name, grads[v.name]!.dataSync().slice() as Float32Array]));
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ids, targets, ...Object.values(grads)]);
  return { loss, grads: out };
}

function worstRelativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, values] of a) {
    const other = b.get(name)!;
    expect(other.length, name).toBe(values.length);
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - other[i]!) / Math.max(1, Math.abs(other[i]!)));
  }
  return worst;
}

describe('fast paths in a training step', () => {
  it('give the loss and every gradient of tfjs on wasm and on cpu within 1e-5', async () => {
    await initBackend({ backend: 'cpu', fastPaths: false });
    manualSeed(7);
    const model = new TinyLM();
    const cpu = lossAndGrads(model);
    await initBackend({ backend: 'wasm', fastPaths: false });
    const wasmNaive = lossAndGrads(model);
    await initBackend({ backend: 'wasm' });
    const wasmFast = lossAndGrads(model);

    expect(wasmFast.grads.size).toBe(model.namedParameters().length);
    expect(Math.abs(wasmFast.loss - wasmNaive.loss)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(wasmFast.loss - cpu.loss)).toBeLessThanOrEqual(1e-5);
    expect(worstRelativeDifference(wasmFast.grads, wasmNaive.grads)).toBeLessThanOrEqual(1e-5);
    expect(worstRelativeDifference(wasmFast.grads, cpu.grads)).toBeLessThanOrEqual(1e-5);
    // The check has teeth: gradients are not all tiny.
    const largest = Math.max(...[...cpu.grads.values()].map((g) => Math.max(...g.map(Math.abs))));
    expect(largest).toBeGreaterThan(1e-2);
    model.dispose();
  });

  it('train with AdamW without leaking tensors or wasm buffers', async () => {
    await initBackend({ backend: 'wasm' });
    manualSeed(8);
    const model = new TinyLM();
    const optimizer = new AdamW(model, { learningRate: 1e-2 });
    const { ids, targets } = batch();
    const vars = model.namedParameters().map(([, v]) => v);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => model.loss(ids, targets), vars);
      optimizer.applyGradients(grads);
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    };
    const first = step();
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    let last = first;
    for (let i = 0; i < 5; i++) last = step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    expect(last).toBeLessThan(first);
    optimizer.dispose();
    model.dispose();
    tf.dispose([ids, targets]);
  });
});
