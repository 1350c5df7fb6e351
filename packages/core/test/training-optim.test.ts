import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, defaultWeightDecayFilter } from '../src/training/adamw';
import { clipByGlobalNorm, globalNorm } from '../src/training/clip';
import { constantSchedule, warmupCosineSchedule } from '../src/training/schedules';
import { GradientAccumulator, accumulateGradients } from '../src/training/accumulate';
import { Linear } from '../src/nn/linear';
import { LayerNorm } from '../src/nn/norm';
import { Module } from '../src/nn/module';
import { Rng } from '../src/runtime/random';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaks, expectNoLeaksSync } from '../src/testing/leaks';
import { runTorchScript, torchAvailable } from '../src/testing/torch';

// ---- an independent AdamW in float64, written from the paper's Algorithm 2 / torch docs ----
interface RefParam {
  values: number[];
  m: number[];
  v: number[];
  t: number;
  decay: boolean;
}

function referenceAdamWStep(p: RefParam, grad: number[], lr: number, b1: number, b2: number, eps: number, wd: number): void {
  p.t += 1;
  for (let i = 0; i < p.values.length; i++) {
    const g = grad[i]!;
    if (p.decay) p.values[i]! *= 1 - lr * wd;
    p.m[i] = b1 * p.m[i]! + (1 - b1) * g;
    p.v[i] = b2 * p.v[i]! + (1 - b2) * g * g;
    const mHat = p.m[i]! / (1 - b1 ** p.t);
    const vHat = p.v[i]! / (1 - b2 ** p.t);
    p.values[i]! -= (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}

interface Case {
  params: Record<string, { shape: number[]; values: number[] }>;
  decay: Record<string, boolean>;
  grads: Record<string, number[] | null>[];
  lr: number[];
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

/** Params with some entries near zero, gradients of mixed scale; `c` has no gradient on step 1 and 3. */
function makeCase(): Case {
  const rng = new Rng(99);
  const rand = (n: number, scale: number) => Array.from({ length: n }, () => rng.normal() * scale);
  const params = {
    'layer.weight': { shape: [3, 4], values: rand(12, 0.5) },
    'layer.bias': { shape: [4], values: rand(4, 0.1) },
    c: { shape: [2, 2], values: rand(4, 1) },
  };
  const grads: Case['grads'] = [];
  for (let s = 0; s < 5; s++) {
    grads.push({
      'layer.weight': rand(12, s === 2 ? 5 : 0.3),
      'layer.bias': rand(4, 0.05),
      c: s === 1 || s === 3 ? null : rand(4, 1),
    });
  }
  return {
    params,
    decay: { 'layer.weight': true, 'layer.bias': false, c: true },
    grads,
    lr: [1e-2, 3e-2, 2e-2, 5e-3, 1e-2],
    betas: [0.9, 0.95],
    eps: 1e-8,
    weight_decay: 0.1,
  };
}

function runOurs(c: Case): Record<string, number[]>[] {
  const variables = Object.entries(c.params).map(
    ([name, p]) => [name, tf.variable(tf.tensor(p.values, p.shape), true)] as [string, tf.Variable],
  );
  const opt = new AdamW(variables, {
    beta1: c.betas[0],
    beta2: c.betas[1],
    eps: c.eps,
    weightDecay: c.weight_decay,
    decayFilter: (name) => c.decay[name]!,
  });
  const out: Record<string, number[]>[] = [];
  c.grads.forEach((stepGrads, s) => {
    const grads: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(stepGrads)) if (g) grads[name] = tf.tensor(g, c.params[name]!.shape);
    opt.applyGradients(grads, c.lr[s]);
    Object.values(grads).forEach((g) => g.dispose());
    out.push(Object.fromEntries(variables.map(([name, v]) => [name, Array.from(v.dataSync())])));
  });
  opt.dispose();
  variables.forEach(([, v]) => v.dispose());
  return out;
}

function runReference(c: Case): Record<string, number[]>[] {
  const state: Record<string, RefParam> = {};
  for (const [name, p] of Object.entries(c.params)) {
    state[name] = { values: [...p.values], m: p.values.map(() => 0), v: p.values.map(() => 0), t: 0, decay: c.decay[name]! };
  }
  return c.grads.map((stepGrads, s) => {
    for (const [name, g] of Object.entries(stepGrads)) {
      if (g) referenceAdamWStep(state[name]!, g, c.lr[s]!, c.betas[0], c.betas[1], c.eps, c.weight_decay);
    }
    return Object.fromEntries(Object.entries(state).map(([name, p]) => [name, [...p.values]]));
  });
}

function expectClose(actual: Record<string, number[]>[], expected: Record<string, number[]>[], tol: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((step, s) => {
    for (const [name, values] of Object.entries(expected[s]!)) {
      values.forEach((v, i) => {
        const err = Math.abs(step[name]![i]! - v);
        if (err > tol) throw new Error(`step ${s} ${name}[${i}]: got ${step[name]![i]}, expected ${v} (|err| ${err})`);
      });
    }
  });
}

describe.each(TEST_BACKENDS)('AdamW on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('matches a float64 reference AdamW, incl. bias correction, decay groups and missing gradients', () => {
    const c = makeCase();
    const ours = runOurs(c);
    const ref = runReference(c);
    expectClose(ours, ref, 2e-6);
    // The case is not trivial: parameters moved by much more than the tolerance.
    const moved = ours[4]!['layer.weight']!.map((x, i) => Math.abs(x - c.params['layer.weight']!.values[i]!));
    expect(Math.max(...moved)).toBeGreaterThan(1e-2);
    // `c` skipped steps 1 and 3: unchanged across them.
    expect(ours[1]!.c).toEqual(ours[0]!.c);
  });

  it.skipIf(!torchAvailable())('matches torch.optim.AdamW', () => {
    const c = makeCase();
    const dir = mkdtempSync(join(tmpdir(), 'chimera-adamw-'));
    try {
      const path = join(dir, 'case.json');
      writeFileSync(path, JSON.stringify(c));
      const torch = JSON.parse(runTorchScript(join(__dirname, 'reference', 'adamw_reference.py'), [path])) as {
        steps: Record<string, number[]>[];
      };
      expectClose(runOurs(c), torch.steps, 1e-6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with a zero gradient, decays only the parameters the filter selects, by (1 - lr * wd)', () => {
    class Tiny extends Module {
      proj = this.addModule('proj', new Linear(3, 2));
      norm = this.addModule('input_layernorm', new LayerNorm(2));
      embed = this.addModule('embed_tokens', new Linear(2, 2, { bias: false }));
    }
    const model = new Tiny();
    const before = Object.fromEntries(model.namedParameters().map(([n, v]) => [n, Array.from(v.dataSync())]));
    const opt = new AdamW(model, { learningRate: 0.1, weightDecay: 0.5 });
    expect(opt.parameterNames()).toEqual(['proj.weight', 'proj.bias', 'input_layernorm.weight', 'input_layernorm.bias', 'embed_tokens.weight']);
    const zeros = Object.fromEntries(model.trainableVariables().map((v) => [v.name, tf.zerosLike(v)]));
    expectNoLeaksSync(() => opt.applyGradients(zeros), 'applyGradients');
    Object.values(zeros).forEach((z) => z.dispose());
    for (const [name, v] of model.namedParameters()) {
      const factor = name === 'proj.weight' ? 1 - 0.1 * 0.5 : 1;
      Array.from(v.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(before[name]![i]! * factor, 6));
    }
    expect(opt.step).toBe(1);
    opt.dispose();
    model.dispose();
  });

  it('restores its state by name: a restored optimizer continues exactly like the original', () => {
    const c = makeCase();
    const make = () => Object.entries(c.params).map(([n, p]) => [n, tf.variable(tf.tensor(p.values, p.shape))] as [string, tf.Variable]);
    const gradsAt = (s: number) => Object.fromEntries(Object.entries(c.grads[s]!).filter(([, g]) => g).map(([n, g]) => [n, tf.tensor(g!, c.params[n]!.shape)]));
    const a = make();
    const optA = new AdamW(a, { learningRate: 0.01 });
    for (let s = 0; s < 3; s++) {
      const g = gradsAt(s);
      optA.applyGradients(g);
      Object.values(g).forEach((t) => t.dispose());
    }
    // A fresh optimizer on fresh variables with copied values and state.
    const b = make();
    b.forEach(([, v], i) => v.assign(a[i]![1]));
    const optB = new AdamW(b, { learningRate: 0.01 });
    const saved = optA.getState();
    expect(Object.keys(saved.tensors).sort()).toEqual(
      ['c.exp_avg', 'c.exp_avg_sq', 'layer.bias.exp_avg', 'layer.bias.exp_avg_sq', 'layer.weight.exp_avg', 'layer.weight.exp_avg_sq'],
    );
    expect(saved.paramSteps).toEqual({ 'layer.weight': 3, 'layer.bias': 3, c: 2 });
    optB.setState(saved);
    for (let s = 3; s < 5; s++) {
      const g = gradsAt(s);
      optA.applyGradients(g);
      optB.applyGradients(g);
      Object.values(g).forEach((t) => t.dispose());
    }
    a.forEach(([, v], i) => expect(Array.from(b[i]![1].dataSync())).toEqual(Array.from(v.dataSync())));
    // A state of other parameters is refused as a whole.
    const wrong = { ...saved, tensors: { ...saved.tensors } };
    delete wrong.tensors['c.exp_avg'];
    expect(() => optB.setState(wrong)).toThrow(/missing c\.exp_avg/);
    optA.dispose();
    optB.dispose();
    [...a, ...b].forEach(([, v]) => v.dispose());
  });

  it('frees everything it made: construct, step and dispose leave no tensors', () => {
    const w = tf.variable(tf.ones([3, 2]));
    const b = tf.variable(tf.zeros([2]));
    expectNoLeaksSync(() => {
      const opt = new AdamW([['w', w], ['b', b]], { weightDecay: 0.1 });
      tf.tidy(() => opt.applyGradients({ w: tf.onesLike(w), b: tf.onesLike(b) }));
      opt.dispose();
    }, 'AdamW lifetime');
    w.dispose();
    b.dispose();
  });

  it('refuses a gradient for a parameter it does not hold', () => {
    const v = tf.variable(tf.zeros([2]));
    const stranger = tf.variable(tf.zeros([2]));
    const opt = new AdamW([['w', v]]);
    const g = tf.ones([2]);
    expect(() => opt.applyGradients({ [stranger.name]: g })).toThrow(/does not hold/);
    g.dispose();
    opt.dispose();
    v.dispose();
    stranger.dispose();
  });
});

describe('defaultWeightDecayFilter', () => {
  it('excludes biases, norms, embeddings and learned tokens; keeps projections', () => {
    const decays = (name: string, shape: number[] = [4, 4]) => defaultWeightDecayFilter(name, shape);
    expect(decays('layers.0.self_attn.q_proj.weight')).toBe(true);
    expect(decays('layers.0.mlp.down_proj.weight')).toBe(true);
    expect(decays('lm_head.weight')).toBe(true);
    expect(decays('patch_embed.proj.weight')).toBe(true);
    expect(decays('layers.0.self_attn.q_proj.bias', [4])).toBe(false);
    expect(decays('layers.0.input_layernorm.weight', [4])).toBe(false);
    expect(decays('ln_f.weight', [4])).toBe(false);
    expect(decays('model.norm.weight', [4])).toBe(false);
    expect(decays('gate', [1])).toBe(false);
    expect(decays('model.embed_tokens.weight')).toBe(false);
    expect(decays('transformer.wte.weight')).toBe(false);
    expect(decays('transformer.wpe.weight')).toBe(false);
    expect(decays('vision.embeddings.position_embedding.weight')).toBe(false);
    expect(decays('vision.pos_embed', [1, 4, 4])).toBe(false);
    expect(decays('vision.cls_token', [1, 1, 4])).toBe(false);
    expect(decays('layers.0.q_norm.weight', [4, 4])).toBe(false);
  });
});

describe('schedules', () => {
  it('constant, with and without warmup', () => {
    const flat = constantSchedule(3e-4);
    expect([0, 1, 1000].map(flat)).toEqual([3e-4, 3e-4, 3e-4]);
    const warm = constantSchedule(1, { warmupSteps: 3 });
    expect([0, 1, 2, 3, 50].map(warm)).toEqual([0.25, 0.5, 0.75, 1, 1]);
  });

  it('warmup + cosine: values at key steps', () => {
    const s = warmupCosineSchedule({ peak: 1, warmupSteps: 4, totalSteps: 14, floor: 0.1 });
    expect(s(0)).toBeCloseTo(1 / 5, 12);
    expect(s(3)).toBeCloseTo(4 / 5, 12);
    expect(s(4)).toBeCloseTo(1, 12); // end of warmup: the peak
    expect(s(9)).toBeCloseTo(0.1 + 0.9 * 0.5, 12); // halfway through the decay: midpoint
    expect(s(14)).toBeCloseTo(0.1, 12); // end: the floor
    expect(s(1000)).toBeCloseTo(0.1, 12);
    // a quarter of the way through the decay: 0.5 * (1 + cos(pi / 4)) of the peak
    expect(warmupCosineSchedule({ peak: 2, warmupSteps: 0, totalSteps: 8 })(2)).toBeCloseTo(1 + Math.cos(Math.PI / 4), 12);
    // monotone decay after warmup
    for (let i = 4; i < 14; i++) expect(s(i + 1)).toBeLessThan(s(i));
  });

  it('warmup + cosine: the default warmup is 5% of the steps, at least 1, leaving one step of decay', () => {
    for (const [totalSteps, warmupSteps] of [[1000, 50], [30, 2], [10, 1], [2, 1], [1, 0]] as const) {
      const implicit = warmupCosineSchedule({ peak: 1, totalSteps, floor: 0.1 });
      const explicit = warmupCosineSchedule({ peak: 1, warmupSteps, totalSteps, floor: 0.1 });
      for (let step = 0; step <= totalSteps; step++) expect(implicit(step), `${totalSteps} steps, step ${step}`).toBe(explicit(step));
    }
  });

  it('rejects bad settings and steps with a clear message', () => {
    expect(() => warmupCosineSchedule({ peak: 1, warmupSteps: 10, totalSteps: 10 })).toThrow(/totalSteps \(10\) must exceed warmupSteps/);
    expect(() => warmupCosineSchedule({ peak: 1, warmupSteps: 1, totalSteps: 10, floor: 2 })).toThrow(/floor/);
    expect(() => constantSchedule(1)(-1)).toThrow(/step must be an integer >= 0/);
    expect(() => constantSchedule(1)(1.5)).toThrow(/step must be an integer/);
  });
});

describe.each(TEST_BACKENDS)('clipping and accumulation on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('clips by the global norm with the torch formula and reports the pre-clip norm', async () => {
    const grads = { a: tf.tensor([3, 0]), b: tf.tensor([[0, 4]]) }; // global norm 5
    expect(globalNorm(grads)).toBeCloseTo(5, 5);
    const result = await expectNoLeaks(() => clipByGlobalNorm(grads, 1), 'clip');
    expect(result.norm).toBeCloseTo(5, 5);
    expect(result.clipped).toBe(true);
    const scale = 1 / (5 + 1e-6);
    expect(Array.from(result.grads.a!.dataSync())).toEqual([expect.closeTo(3 * scale, 6), 0]);
    expect(Array.from(result.grads.b!.dataSync())).toEqual([0, expect.closeTo(4 * scale, 6)]);
    expect(globalNorm(result.grads)).toBeCloseTo(1, 5);
    Object.values(result.grads).forEach((g) => g.dispose());

    const loose = clipByGlobalNorm(grads, 10);
    expect(loose.clipped).toBe(false);
    expect(Array.from(loose.grads.a!.dataSync())).toEqual([3, 0]);
    Object.values(loose.grads).forEach((g) => g.dispose());

    const bad = { a: tf.tensor([NaN, 1]) };
    const nan = clipByGlobalNorm(bad, 1);
    expect(nan.norm).toBeNaN();
    expect(nan.clipped).toBe(false);
    Object.values(nan.grads).forEach((g) => g.dispose());
    bad.a.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    expect(() => clipByGlobalNorm({}, 0)).toThrow(/maxNorm must be/);
  });

  it('k micro-batches, averaged, give the gradient of one batch of k', async () => {
    const layer = new Linear(5, 3);
    const rng = new Rng(5);
    const x = tf.tensor2d(Array.from({ length: 8 * 5 }, () => rng.normal()), [8, 5]);
    const y = tf.tensor2d(Array.from({ length: 8 * 3 }, () => rng.normal()), [8, 3]);
    const lossOn = (xs: tf.Tensor, ys: tf.Tensor) => tf.mean(tf.square(tf.sub(tf.tanh(layer.forward(xs)), ys))) as tf.Scalar;
    const vars = layer.trainableVariables();

    const whole = accumulateGradients(() => lossOn(x, y), vars, 1);
    const micro = await expectNoLeaks(
      () => accumulateGradients((i) => lossOn(tf.slice(x, [2 * i, 0], [2, 5]), tf.slice(y, [2 * i, 0], [2, 3])), vars, 4),
      'accumulateGradients',
    );
    expect(micro.microLosses).toHaveLength(4);
    expect(micro.loss).toBeCloseTo(whole.loss, 5);
    for (const v of vars) {
      const a = Array.from(whole.grads[v.name]!.dataSync());
      const b = Array.from(micro.grads[v.name]!.dataSync());
      expect(a.some((g) => Math.abs(g) > 1e-3)).toBe(true);
      b.forEach((g, i) => expect(g).toBeCloseTo(a[i]!, 5));
    }
    // 'sum' is k times the mean
    const summed = accumulateGradients((i) => lossOn(tf.slice(x, [2 * i, 0], [2, 5]), tf.slice(y, [2 * i, 0], [2, 3])), vars, 4, 'sum');
    const w = vars[0]!.name;
    Array.from(summed.grads[w]!.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(4 * micro.grads[w]!.dataSync()[i]!, 4));

    for (const r of [whole, micro, summed]) Object.values(r.grads).forEach((g) => g.dispose());
    x.dispose();
    y.dispose();
    layer.dispose();
  });

  it('GradientAccumulator sums, averages and frees what it holds', () => {
    const acc = new GradientAccumulator();
    const before = tf.memory().numTensors;
    const g1 = { a: tf.tensor([1, 2]) };
    const g2 = { a: tf.tensor([3, 6]) };
    acc.add(g1);
    acc.add(g2);
    expect(acc.count).toBe(2);
    const mean = acc.mean();
    expect(Array.from(mean.a!.dataSync())).toEqual([2, 4]);
    mean.a!.dispose();
    const wrongShape = { a: tf.tensor([[1]]) };
    expect(() => acc.add(wrongShape)).toThrow(/changed shape/);
    wrongShape.a.dispose();
    acc.dispose();
    g1.a.dispose();
    g2.a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
