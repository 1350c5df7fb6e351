import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { RMSNorm } from '../src/nn/norm';
import { Embedding } from '../src/nn/embedding';
import { GatedMLP } from '../src/nn/mlp';
import { applyLoRA, mergeLoRA, unmergeLoRA, loraLayers, loraStateDict, LoRAAdapter } from '../src/nn/lora';
import { manualSeed, Rng } from '../src/runtime/random';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { gradCheck, gradCheckVariables } from '../src/testing/grad-check';
import { expectNoLeaks, expectNoLeaksSync } from '../src/testing/leaks';

// A small decoder-shaped model: the layers keep their Linear children in fields, as real layers do.
class Attn extends Module {
  readonly qProj = this.addModule('q_proj', new Linear(8, 8, { bias: false }));
  readonly vProj = this.addModule('v_proj', new Linear(8, 8));
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(this.qProj.forward(x), tf.tanh(this.vProj.forward(x))));
  }
}

class Block extends Module {
  readonly norm = this.addModule('input_layernorm', new RMSNorm(8));
  readonly selfAttn = this.addModule('self_attn', new Attn());
  readonly mlp = this.addModule('mlp', new GatedMLP(8, 12));
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = tf.add(x, this.selfAttn.forward(this.norm.forward(x)));
      return tf.add(h, this.mlp.forward(h));
    });
  }
}

class Decoder extends Module {
  readonly embed = this.addModule('embed_tokens', new Embedding(10, 8, { std: 1 }));
  readonly layers = this.addModuleList('layers', [new Block(), new Block()]);
  readonly head = this.addModule('lm_head', new Linear(8, 10, { bias: false }));
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.embed.forward(ids);
      for (const layer of this.layers) h = layer.forward(h);
      return this.head.forward(h);
    });
  }
}

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

function run(model: Decoder, ids: tf.Tensor): number[] {
  const y = model.forward(ids);
  const out = values(y);
  y.dispose();
  return out;
}

function snapshot(vars: [string, tf.Variable][]): Record<string, number[]> {
  return Object.fromEntries(vars.map(([name, v]) => [name, values(v)]));
}

/** Sets every B to random values, so adapters change outputs (a fresh adapter is exactly zero). */
function randomizeB(root: Module, seed: number): void {
  loraLayers(root).forEach(([, linear], i) => {
    const b = linear.lora!.b;
    tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, 'float32', seed + i)));
  });
}

function expectAllClose(a: number[], b: number[], tol: number): void {
  expect(a.length).toBe(b.length);
  const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  expect(worst).toBeLessThan(tol);
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));
  const ids = () =>
    tf.tensor2d(
      [
        [1, 5, 9, 0],
        [3, 3, 7, 2],
      ],
      [2, 4],
      'int32',
    );

  it('starts at exactly the base outputs, registers a/b under the Linear, and trains only the adapters', () => {
    const model = new Decoder();
    const input = ids();
    const base = run(model, input);
    const adapted = applyLoRA(model, 'layers.*.self_attn', { rank: 2, alpha: 4 });
    expect(adapted).toEqual([
      'layers.0.self_attn.q_proj',
      'layers.0.self_attn.v_proj',
      'layers.1.self_attn.q_proj',
      'layers.1.self_attn.v_proj',
    ]);
    expect(run(model, input)).toEqual(base);

    const keys = Object.keys(model.stateDict());
    expect(keys).toContain('layers.0.self_attn.q_proj.weight');
    expect(keys).toContain('layers.0.self_attn.q_proj.lora.a');
    expect(keys).toContain('layers.1.self_attn.v_proj.lora.b');
    expect(model.layers[0]!.selfAttn.qProj.lora!.a.shape).toEqual([8, 2]);
    expect(model.layers[0]!.selfAttn.qProj.lora!.b.shape).toEqual([2, 8]);
    expect(model.layers[0]!.selfAttn.qProj.lora!.scale).toBe(2);

    const trainable = model.parameterSummary({ trainableOnly: true }).map((p) => p.name);
    expect(trainable).toEqual(adapted.flatMap((p) => [`${p}.lora.a`, `${p}.lora.b`]));
    expect(model.countParameters({ trainableOnly: true })).toBe(4 * (8 * 2 + 2 * 8));
    expect(Object.keys(loraStateDict(model))).toEqual(trainable);
    input.dispose();
    model.dispose();
  });

  it('initialises A like a Linear (U(-1/sqrt(in), 1/sqrt(in))) and B at zero', () => {
    const linear = new Linear(64, 32);
    const lora = linear.addLoRA({ rank: 16 });
    const a = values(lora.a);
    const bound = 1 / 8;
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(values(lora.b).every((v) => v === 0)).toBe(true);
    expect(lora.scale).toBe(1);
    expect(() => linear.addLoRA({ rank: 2 })).toThrow(/already has a LoRA adapter/);
    expect(() => new LoRAAdapter(4, 4, { rank: 0 })).toThrow(/rank must be a positive integer, got 0/);
    linear.dispose();
  });

  it('adds scale * x A B to the base output (checked by hand)', () => {
    const rng = new Rng(1);
    const linear = new Linear(3, 2);
    const lora = linear.addLoRA({ rank: 1, alpha: 3 });
    tf.tidy(() => lora.b.assign(tf.tensor2d([[0.5, -2]])));
    const xs = Array.from({ length: 6 }, () => rng.normal());
    const x = tf.tensor2d(xs, [2, 3]);
    const y = expectNoLeaksSync(() => linear.forward(x));
    const [w, b, a, bb] = [values(linear.weight), values(linear.bias!), values(lora.a), values(lora.b)];
    const expected: number[] = [];
    for (let n = 0; n < 2; n++) {
      const xa = [0, 1, 2].reduce((s, i) => s + xs[n * 3 + i]! * a[i]!, 0);
      for (let o = 0; o < 2; o++) {
        const base = [0, 1, 2].reduce((s, i) => s + xs[n * 3 + i]! * w[i * 2 + o]!, 0) + b[o]!;
        expected.push(base + 3 * xa * bb[o]!);
      }
    }
    expectAllClose(values(y), expected, 1e-5);
    tf.dispose([x, y]);
    linear.dispose();
  });

  it('a few training steps move only A and B; base weights stay bit-identical', async () => {
    const model = new Decoder();
    applyLoRA(model, /q_proj|down_proj/, { rank: 2 });
    const input = ids();
    const target = tf.tidy(() =>
      tf.oneHot(
        tf.tensor2d(
          [
            [5, 9, 0, 1],
            [3, 7, 2, 4],
          ],
          [2, 4],
          'int32',
        ),
        10,
      ),
    );
    const isLoRA = (name: string) => name.includes('.lora.');
    const named = model.namedParameters();
    const before = snapshot(named);
    const optimizer = tf.train.adam(0.05);
    const loss = () => tf.losses.softmaxCrossEntropy(target, model.forward(input)) as tf.Scalar;
    const first = tf.tidy(() => loss().dataSync()[0]!);
    const step = () => tf.dispose(optimizer.minimize(loss, false, model.trainableVariables()) ?? undefined);
    step(); // creates Adam's slot variables
    await expectNoLeaks(() => {
      for (let i = 0; i < 3; i++) step();
    }, 'training steps');
    const after = snapshot(named);
    for (const [name] of named) {
      if (isLoRA(name)) expect(after[name], name).not.toEqual(before[name]);
      else expect(after[name], name).toEqual(before[name]);
    }
    expect(tf.tidy(() => loss().dataSync()[0]!)).toBeLessThan(first);
    optimizer.dispose();
    tf.dispose([input, target]);
    model.dispose();
  });

  it('merge and unmerge keep the outputs; merged weights are W + scale * A B', () => {
    const model = new Decoder();
    applyLoRA(model, '**', { rank: 3, alpha: 6 });
    randomizeB(model, 40);
    const input = ids();
    const adaptedOut = run(model, input);
    const q = model.layers[1]!.selfAttn.qProj;
    const w0 = values(q.weight);
    const delta = tf.tidy(() => values(tf.mul(tf.matMul(q.lora!.a, q.lora!.b), 2)));

    const before = tf.memory().numTensors;
    expect(mergeLoRA(model)).toBe(loraLayers(model).length);
    expect(tf.memory().numTensors).toBe(before);
    expect(q.lora!.merged).toBe(true);
    expectAllClose(
      values(q.weight),
      w0.map((v, i) => v + delta[i]!),
      1e-6,
    );
    expectAllClose(run(model, input), adaptedOut, 1e-4);
    expect(mergeLoRA(model)).toBe(0); // already merged

    expect(unmergeLoRA(model)).toBe(loraLayers(model).length);
    expect(q.lora!.merged).toBe(false);
    expectAllClose(values(q.weight), w0, 1e-6);
    expectAllClose(run(model, input), adaptedOut, 1e-4);
    expect(unmergeLoRA(model)).toBe(0);
    input.dispose();
    model.dispose();
  });

  it('passes a gradient check through the adapter (w.r.t. A, B and the input)', () => {
    const linear = new Linear(4, 3);
    const lora = linear.addLoRA({ rank: 2, alpha: 3 });
    tf.tidy(() => lora.b.assign(tf.randomNormal([2, 3], 0, 1, 'float32', 5)));
    linear.freeze();
    lora.unfreeze();
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 6);
    const weights = tf.randomNormal([5, 3], 0, 1, 'float32', 7);
    const loss = (input: tf.Tensor) => tf.sum(tf.mul(tf.tanh(linear.forward(input)), weights)) as tf.Scalar;
    gradCheckVariables(() => loss(x), [lora.a, lora.b]);
    gradCheck(loss, [x]);
    tf.dispose([x, weights]);
    linear.dispose();
  });

  it('loads a plain checkpoint with strict: false and reports the LoRA keys missing', () => {
    manualSeed(77);
    const plain = new Decoder();
    const model = new Decoder();
    const adapted = applyLoRA(model, /self_attn\.(q|v)_proj$/, { rank: 2 });
    const loraKeys = adapted.flatMap((p) => [`${p}.lora.a`, `${p}.lora.b`]);
    expect(() => model.loadStateDict(plain.stateDict())).toThrow(/missing \(8\): .*lora\.a/);
    const result = model.loadStateDict(plain.stateDict(), { strict: false });
    expect(result.missing).toEqual(loraKeys);
    expect(result.unexpected).toEqual([]);
    const input = ids();
    expect(run(model, input)).toEqual(run(plain, input)); // B is zero, so the adapted model is the plain one
    input.dispose();
    plain.dispose();
    model.dispose();
  });

  it('dropout on the adapter input acts in train mode only', () => {
    const linear = new Linear(16, 4);
    linear.addLoRA({ rank: 2, dropout: 0.5 });
    expect(Object.keys(linear.stateDict())).toEqual(['weight', 'bias', 'lora.a', 'lora.b']);
    randomizeB(linear, 9);
    const x = tf.ones([3, 16]);
    const forward = () => tf.tidy(() => values(linear.forward(x)));
    linear.eval();
    const evalOut = forward();
    expect(forward()).toEqual(evalOut);
    linear.train();
    const trainOut = forward();
    expect(trainOut).not.toEqual(evalOut);
    expect(forward()).not.toEqual(trainOut); // a fresh mask per call
    x.dispose();
    linear.dispose();
  });

  it('applyLoRA reports a pattern that matches no Linear, and skips layers already adapted', () => {
    const model = new Decoder();
    expect(() => applyLoRA(model, 'layers.*.attn', { rank: 2 })).toThrow(
      /pattern layers\.\*\.attn matched no Linear layer\. Linear paths in this model: layers\.0\.self_attn\.q_proj, /,
    );
    expect(applyLoRA(model, '**.q_proj', { rank: 2 })).toEqual([
      'layers.0.self_attn.q_proj',
      'layers.1.self_attn.q_proj',
    ]);
    expect(applyLoRA(model, /self_attn/, { rank: 2 })).toEqual([
      'layers.0.self_attn.v_proj',
      'layers.1.self_attn.v_proj',
    ]);
    expect(loraLayers(model).length).toBe(4);
    // Every adapter stays trainable after the second call; nothing else is.
    expect(model.trainableVariables().length).toBe(8);
    model.dispose();
  });

  it('fits a low-rank change of a frozen random Linear', async () => {
    const [dIn, dOut, n, rank] = [12, 10, 48, 2];
    manualSeed(5);
    const layer = new Linear(dIn, dOut, { bias: false });
    const x = tf.randomNormal([n, dIn], 0, 1, 'float32', 31);
    // Target: W + U V with a rank-2 U V; W stays frozen, so only the adapter can close the gap.
    const target = tf.tidy(() => {
      const u = tf.randomNormal([dIn, rank], 0, 0.5, 'float32', 32);
      const v = tf.randomNormal([rank, dOut], 0, 0.5, 'float32', 33);
      return tf.matMul(x, tf.add(layer.weight, tf.matMul(u, v)));
    });
    applyLoRA(layer, '**', { rank, alpha: rank });
    const w0 = values(layer.weight);
    const optimizer = tf.train.adam(0.03);
    const loss = () => tf.losses.meanSquaredError(target, layer.forward(x)) as tf.Scalar;
    const initial = tf.tidy(() => loss().dataSync()[0]!);
    const step = () => tf.dispose(optimizer.minimize(loss, false, layer.trainableVariables()) ?? undefined);
    step(); // creates Adam's slot variables
    await expectNoLeaks(() => {
      for (let i = 1; i < 150; i++) step();
    }, 'LoRA fitting');
    const final = tf.tidy(() => loss().dataSync()[0]!);
    expect(initial).toBeGreaterThan(0.1);
    expect(final).toBeLessThan(initial / 1000);
    expect(values(layer.weight)).toEqual(w0);
    optimizer.dispose();
    tf.dispose([x, target]);
    layer.dispose();
  });
});
