/**
 * The tied output head (`Embedding.attend`) keeps a transposed copy of the table for calls outside a gradient
 * tape. These tests hold it to what the plain head computes, `h @ weight^T` with the table read at call time: after
 * every way the table can change (optimizer step, loadStateDict, assign, resize), under gradient recording, and for
 * ownership (never in the state dict, one copy at most, freed with the module).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Embedding } from '../src/nn/embedding';
import { Module } from '../src/nn/module';
import { AdamW } from '../src/training/adamw';
import { Rng } from '../src/runtime/random';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';

/** logits = h @ weight^T from the table's current values, in float64 JS (no tfjs, no cache). */
function reference(emb: Embedding, h: tf.Tensor): number[] {
  const table = emb.weight.dataSync();
  const rows = h.dataSync();
  const [vocab, dim] = emb.weight.shape as [number, number];
  const n = rows.length / dim;
  const out = new Array<number>(n * vocab);
  for (let i = 0; i < n; i++) {
    for (let v = 0; v < vocab; v++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += rows[i * dim + d]! * table[v * dim + d]!;
      out[i * vocab + v] = s;
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The head's logits, checked against the reference and against tfjs's own uncached product (bit for bit). */
function expectHeadMatches(emb: Embedding, h: tf.Tensor): void {
  const logits = emb.attend(h);
  const plain = tf.tidy(() => tf.matMul(tf.reshape(h, [-1, emb.dim]), tf.transpose(emb.weight)));
  expect(logits.shape).toEqual([...h.shape.slice(0, -1), emb.numEmbeddings]);
  expect(maxAbsDiff(logits.dataSync(), reference(emb, h))).toBeLessThan(1e-5);
  expect(Array.from(logits.dataSync())).toEqual(Array.from(plain.dataSync()));
  tf.dispose([logits, plain]);
}

class Tiny extends Module {
  readonly embed: Embedding;
  constructor(vocab: number, dim: number) {
    super();
    this.embed = this.addModule('embed', new Embedding(vocab, dim, { std: 1 }));
  }
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  const hidden = (rows: number, dim: number, seed: number) => {
    const rng = new Rng(seed);
    return tf.tensor3d(Array.from({ length: rows * dim }, () => rng.normal()), [1, rows, dim]);
  };

  it('attend is h @ weight^T, and repeated calls reuse one copy (one extra tensor, no growth)', () => {
    const h = hidden(3, 5, 1);
    const start = tf.memory().numTensors;
    const emb = new Embedding(7, 5, { std: 1 });
    expectHeadMatches(emb, h);
    expect(tf.memory().numTensors).toBe(start + 2); // the table and its transposed copy, owned by the module
    for (let i = 0; i < 3; i++) expectNoLeaksSync(() => expectHeadMatches(emb, h), 'attend with the copy in place');
    emb.dispose();
    expect(tf.memory().numTensors).toBe(start); // dispose frees the table and the copy
    h.dispose();
  });

  it('is never stale: after an optimizer step, loadStateDict, assign and resize', () => {
    const model = new Tiny(6, 4);
    const emb = model.embed;
    const h = hidden(2, 4, 2);
    const ids = tf.tensor1d([0, 3, 5], 'int32');
    expectHeadMatches(emb, h);

    // An AdamW step on a loss through both uses of the table (gather and head).
    const optimizer = new AdamW(model, { learningRate: 0.1, weightDecay: 0 });
    const before = Array.from(emb.weight.dataSync());
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(emb.attend(emb.forward(ids)), 0.5)) as tf.Scalar, [emb.weight]);
    optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
    expect(maxAbsDiff(emb.weight.dataSync(), before)).toBeGreaterThan(0.01);
    expectHeadMatches(emb, h);

    // A checkpoint load.
    const rng = new Rng(3);
    const loaded = tf.tensor2d(Array.from({ length: 24 }, () => rng.normal()), [6, 4]);
    model.loadStateDict({ 'embed.weight': loaded });
    expectHeadMatches(emb, h);
    // The variable leaves that data and comes back to it (the same tensor loaded again): the copy made from it
    // is still that data's transpose.
    tf.tidy(() => emb.weight.assign(tf.zeros([6, 4])));
    model.loadStateDict({ 'embed.weight': loaded });
    expectHeadMatches(emb, h);
    tf.tidy(() => emb.weight.assign(tf.zeros([6, 4])));
    expectHeadMatches(emb, h);

    // Growing and shrinking the vocabulary replaces the variable.
    emb.resize(9);
    expectHeadMatches(emb, h);
    emb.resize(4);
    expectHeadMatches(emb, h);
    tf.dispose([h, ids, loaded]);
    optimizer.dispose();
    model.dispose();
  });

  it('under a gradient tape the head stays differentiable, and a stale copy is freed there', () => {
    const emb = new Embedding(5, 3, { std: 1 });
    const h = hidden(2, 3, 4);
    const dy = hidden(2, 5, 5);
    expectHeadMatches(emb, h); // makes the copy
    const start = tf.memory().numTensors;
    const loss = () => tf.sum(tf.mul(emb.attend(h), dy)) as tf.Scalar;
    const { value, grads } = tf.variableGrads(loss, [emb.weight]);
    // d/dW sum(dy * (h W^T)) = dy^T h, [vocab, dim].
    const [n, vocab, dim] = [2, 5, 3];
    const hv = h.dataSync();
    const dv = dy.dataSync();
    const expected = Array.from({ length: vocab * dim }, (_, i) => {
      const [v, d] = [Math.floor(i / dim), i % dim];
      let s = 0;
      for (let r = 0; r < n; r++) s += dv[r * vocab + v]! * hv[r * dim + d]!;
      return s;
    });
    expect(maxAbsDiff(grads[emb.weight.name]!.dataSync(), expected)).toBeLessThan(1e-5);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(start); // the copy was current: kept

    tf.tidy(() => emb.weight.assign(tf.mul(emb.weight, 2)));
    const taped = tf.variableGrads(loss, [emb.weight]);
    tf.dispose([taped.value, ...Object.values(taped.grads)]);
    expect(tf.memory().numTensors).toBe(start - 1); // stale copy freed by the taped call
    expectHeadMatches(emb, h); // and rebuilt outside the tape
    expect(tf.memory().numTensors).toBe(start);
    tf.dispose([h, dy]);
    emb.dispose();
  });

  it('the copy is not part of the module: state dict, parameters and releaseHeadCache', () => {
    const model = new Tiny(8, 4);
    const h = hidden(1, 4, 6);
    expectHeadMatches(model.embed, h);
    expect(Object.keys(model.stateDict())).toEqual(['embed.weight']);
    expect(model.trainableVariables()).toEqual([model.embed.weight]);
    expect(model.countParameters()).toBe(32);
    const count = tf.memory().numTensors;
    model.embed.releaseHeadCache();
    expect(tf.memory().numTensors).toBe(count - 1);
    model.embed.releaseHeadCache(); // idempotent
    expectHeadMatches(model.embed, h);
    h.dispose();
    model.dispose();
    model.dispose(); // a module reached twice (shared child) is disposed twice: no throw
  });
});
