import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Linear, Module } from '@chimera/core';
import { Rng, TEST_BACKENDS, setupTestBackend, expectNoLeaksSync } from '@chimera/core/testing';
import { CausalLM, type CausalLMOutput } from '../src/model/causal-lm';
import { tinyLlama, type LlamaConfig } from '../src/config';
import { isExtensionParameter, resolveLayers, type BlockContext } from '../src/model/extension-points';
import { TokenRouting } from '../src/model/routing';
import { causalLMLoss } from '../src/loss';
import { exactlyEqual, idsTensor, maxAbsDiff, maxAbsDiffArrays, perturbNorms, randomIds, referenceLogits } from './model-helpers';

/** hidden + tanh(gate) * proj(hidden): the identity while the gate is 0 (Flamingo-style). Records what it saw. */
class GatedBlock extends Module {
  readonly gate: tf.Variable;
  readonly proj: Linear;
  readonly seen: { layer: number; position: string; context: Readonly<Record<string, unknown>>; positions: number[] }[] = [];

  constructor(dim: number, gate = 0) {
    super();
    this.gate = this.addParameter('gate', tf.tensor1d([gate]));
    this.proj = this.addModule('proj', new Linear(dim, dim));
  }

  forward(hidden: tf.Tensor, ctx: BlockContext): tf.Tensor {
    this.seen.push({ layer: ctx.layer, position: ctx.position, context: ctx.context, positions: ctx.positions?.shape });
    return tf.tidy(() => tf.add(hidden, tf.mul(tf.tanh(this.gate), this.proj.forward(hidden))));
  }
}

class ProbeHead extends Module {
  readonly proj: Linear;
  constructor(dim: number, out: number) {
    super();
    this.proj = this.addModule('proj', new Linear(dim, out));
  }
  forward(hidden: tf.Tensor): tf.Tensor {
    return this.proj.forward(hidden);
  }
}

function cloneModel(model: CausalLM, config: LlamaConfig = model.config as LlamaConfig): CausalLM {
  const copy = new CausalLM(config);
  copy.loadStateDict(model.stateDict(), { strict: false });
  return copy;
}

/** Moves every expert weight away from the base weight it was copied from. */
function perturbExperts(model: CausalLM, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, v] of model.namedParameters()) {
    if (!name.includes('.experts.')) continue;
    const noise = tf.tensor(Array.from({ length: v.size }, () => 0.3 * (rng.next() - 0.5)), v.shape);
    v.assign(tf.add(v, noise));
    noise.dispose();
  }
}

function disposeOutput(...outputs: CausalLMOutput[]): void {
  for (const o of outputs) tf.dispose([o.logits, o.hidden, ...Object.values(o.heads), ...(o.hiddenStates ?? [])]);
}

function snapshot(model: CausalLM, filter: (name: string) => boolean): Map<string, Float32Array> {
  return new Map(model.namedParameters().filter(([n]) => filter(n)).map(([n, v]) => [n, v.dataSync().slice() as Float32Array]));
}

function sameValues(a: Float32Array, b: Float32Array | Int32Array | Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A few AdamW steps on `loss` over the model's trainable parameters. */
function train(model: CausalLM, loss: () => tf.Scalar, steps: number, learningRate = 0.02): void {
  const optimizer = new AdamW(model, { learningRate });
  for (let i = 0; i < steps; i++) {
    const { value, grads } = tf.variableGrads(loss, model.trainableVariables());
    optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
  }
  optimizer.dispose();
}

const MODALITY = [
  [0, 1, 1, 0, 1, 0],
  [1, 1, 0, 0, 0, 1],
];

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('identity: unused points, zero-gate blocks, zero-init prefix adapters, fresh routing and heads keep the logits bitwise', () => {
    const base = new CausalLM(tinyLlama({ numLayers: 3 }));
    perturbNorms(base);
    const ids = idsTensor(randomIds(2, 6, 64, 21));
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]]);
    const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
    const plain = base.forward({ inputIds: ids, paddingMask: mask });

    // Unused: routing labels and a context on an unextended model change nothing.
    const unused = base.forward({ inputIds: ids, paddingMask: mask, tokenModality, context: { image: 1 } });
    expect(exactlyEqual(unused.logits, plain.logits)).toBe(true);

    const fused = cloneModel(base);
    fused.insertBlock(() => new GatedBlock(32), { layer: 'all', position: 'after' });
    fused.insertBlock(new GatedBlock(32), { layer: 1, position: 'before' });
    fused.addPrefixAdapter('all', { length: 3 });
    fused.routeByModality({ numModalities: 2, layers: [0], mode: 'shared-attention' });
    fused.routeByModality({ numModalities: 2, layers: [1], parts: ['attention', 'mlp'] }); // CogVLM's visual expert
    fused.routeByModality({ numModalities: 3, layers: [2], mode: 'towers' });
    fused.addHead('probe', new ProbeHead(32, 5));
    const out = expectNoLeaksSync(
      () => fused.forward({ inputIds: ids, paddingMask: mask, tokenModality, context: { image: 1 } }),
      'fused forward',
    );
    expect(exactlyEqual(out.logits, plain.logits)).toBe(true);
    expect(out.heads.probe!.shape).toEqual([2, 6, 5]);

    // And with the tanh gate of the adapters too, and without routing labels.
    const tanhModel = cloneModel(base);
    tanhModel.addPrefixAdapter({ last: 2 }, { length: 2, gateActivation: 'tanh' });
    const tanhOut = tanhModel.forward({ inputIds: ids, paddingMask: mask });
    expect(exactlyEqual(tanhOut.logits, plain.logits)).toBe(true);

    disposeOutput(plain, unused, out, tanhOut);
    tf.dispose([ids, mask, tokenModality]);
    for (const m of [base, fused, tanhModel]) m.dispose();
  });

  it('open prefix adapters on routed layers with fresh experts equal the same adapters on the unrouted model', () => {
    const plain = new CausalLM(tinyLlama());
    plain.addPrefixAdapter('all', { length: 3 });
    for (const [name, v] of plain.namedParameters()) if (name.endsWith('prefix_adapter.gate')) v.assign(tf.tensor1d([0.4, -0.7, 0.9, 0.3]));
    const routed = cloneModel(plain);
    routed.addPrefixAdapter('all', { length: 3 });
    routed.loadStateDict(plain.stateDict()); // copies the adapters too
    routed.routeByModality({ numModalities: 2, layers: 0 });
    routed.routeByModality({ numModalities: 2, layers: 1, mode: 'towers' });
    const ids = idsTensor(randomIds(2, 6, 64, 31));
    const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
    const a = plain.forward({ inputIds: ids });
    const b = routed.forward({ inputIds: ids, tokenModality });
    const noAdapter = new CausalLM(tinyLlama());
    noAdapter.loadStateDict(plain.stateDict(), { strict: false });
    const c = noAdapter.forward({ inputIds: ids });
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.logits, c.logits)).toBeGreaterThan(1e-4); // the open adapters do act
    disposeOutput(a, b, c);
    tf.dispose([ids, tokenModality]);
    for (const m of [plain, routed, noAdapter]) m.dispose();
  });

  it('a block inserted at layer i changes the residual stream only from layer i on, and sees the call context', () => {
    const base = new CausalLM(tinyLlama({ numLayers: 3 }));
    const ids = idsTensor(randomIds(2, 5, 64, 22));
    const plain = base.forward({ inputIds: ids }, { outputHiddenStates: true });
    for (const [position, layer] of [['before', 2], ['after', 0]] as const) {
      const fused = cloneModel(base);
      const block = new GatedBlock(32, 0.5);
      const [info] = fused.insertBlock(block, { layer, position });
      expect(info!.prefix).toBe(`model.inserted.${position}_${layer}`);
      expect(Object.keys(fused.stateDict())).toEqual(
        expect.arrayContaining([`model.inserted.${position}_${layer}.gate`, `model.inserted.${position}_${layer}.proj.weight`]),
      );
      const out = fused.forward({ inputIds: ids, context: { media: 'x' } }, { outputHiddenStates: true });
      // hiddenStates[j] is the stream entering layer j (after layer j-1 and the blocks after it).
      const firstChanged = layer + 1;
      for (let j = 0; j < 4; j++) {
        const same = exactlyEqual(out.hiddenStates![j]!, plain.hiddenStates![j]!);
        expect(same, `hidden state ${j} with a block ${position} layer ${layer}`).toBe(j < firstChanged);
      }
      expect(maxAbsDiff(out.logits, plain.logits)).toBeGreaterThan(1e-4);
      expect(block.seen).toEqual([{ layer, position, context: { media: 'x' }, positions: [2, 5] }]);
      disposeOutput(out);
      fused.dispose();
    }
    // The block before layer 2 maps layer 1's output, and layer 2 runs on the block's output.
    const fused = cloneModel(base);
    const block = new GatedBlock(32, 0.5);
    fused.insertBlock(block, { layer: 2, position: 'before' });
    const out = fused.forward({ inputIds: ids }, { outputHiddenStates: true });
    const positions = tf.tensor2d([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], undefined, 'int32');
    const rotary = fused.model.rotary.forward(positions);
    const byHand = tf.tidy(() => {
      const blocked = block.forward(plain.hiddenStates![2]!, {} as BlockContext);
      return fused.layers[2]!.forward(blocked, { rotary, bias: null, cache: null, routing: TokenRouting.allText(2, 5), context: {} });
    });
    expect(maxAbsDiff(byHand, out.hiddenStates![3]!)).toBeLessThan(1e-6);
    disposeOutput(plain, out);
    tf.dispose([ids, positions, rotary.cos, rotary.sin, byHand]);
    fused.dispose();
    base.dispose();
  });

  it('routing matches a float64 per-token reference: shared-attention (MoT), visual expert (CogVLM) and towers (X-Fusion)', () => {
    const base = new CausalLM(tinyLlama({ modelType: 'qwen2', attentionBias: true }));
    perturbNorms(base);
    const idsArray = randomIds(2, 6, 64, 23);
    const ids = idsTensor(idsArray);
    const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
    const cases = [
      { mode: 'shared-attention', parts: undefined },
      { mode: 'shared-attention', parts: ['attention', 'mlp'] },
      { mode: 'shared-attention', parts: ['mlp', 'norms'] },
      { mode: 'towers', parts: undefined },
    ] as const;
    const logitsByCase: tf.Tensor[] = [];
    for (const { mode, parts } of cases) {
      const model = cloneModel(base);
      model.routeByModality({ numModalities: 2, mode, parts });
      perturbExperts(model, 99); // same perturbation for every case
      const out = model.forward({ inputIds: ids, tokenModality });
      const expected = referenceLogits(model, idsArray, { tokenModality: MODALITY, mode });
      expect(maxAbsDiffArrays(out.logits, expected), `${mode} ${parts?.join('+') ?? 'all parts'}`).toBeLessThan(1e-4);
      // The per-token weights matter: the plain reference (everything modality 0) is far off.
      expect(maxAbsDiffArrays(out.logits, referenceLogits(model, idsArray))).toBeGreaterThan(1e-3);
      logitsByCase.push(out.logits);
      out.hidden.dispose();
      model.dispose();
    }
    // Towers differ from shared attention with the same experts.
    expect(maxAbsDiff(logitsByCase[0]!, logitsByCase[3]!)).toBeGreaterThan(1e-3);
    tf.dispose([ids, tokenModality, ...logitsByCase]);
    base.dispose();
  });

  it('routed models decode with a cache exactly like the full forward (towers keep a cache per tower)', () => {
    for (const mode of ['shared-attention', 'towers'] as const) {
      const model = new CausalLM(tinyLlama());
      model.routeByModality({ numModalities: 2, mode });
      perturbExperts(model, 5);
      const ids = idsTensor(randomIds(2, 6, 64, 24));
      const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
      const full = model.forward({ inputIds: ids, tokenModality });
      const cache = model.createCache(2);
      expect(cache.numLayers).toBe(mode === 'towers' ? 4 : 2);
      const pieces: tf.Tensor[] = [];
      const slice = (t: tf.Tensor, start: number, size: number) => tf.slice(t, [0, start], [2, size]);
      for (const [start, size] of [[0, 3], [3, 1], [4, 1], [5, 1]] as const) {
        const stepIds = slice(ids, start, size);
        const stepModality = slice(tokenModality, start, size);
        const out = model.forward({ inputIds: stepIds, tokenModality: stepModality, cache });
        pieces.push(out.logits);
        tf.dispose([stepIds, stepModality, out.hidden]);
      }
      const stepped = tf.concat(pieces, 1);
      expect(maxAbsDiff(stepped, full.logits), mode).toBeLessThan(1e-5);
      cache.dispose();
      disposeOutput(full);
      tf.dispose([ids, tokenModality, stepped, ...pieces]);
      model.dispose();
    }
  });

  it('a routed layer trains only the intended weights: text frozen, modality-1 experts learn', () => {
    const model = new CausalLM(tinyLlama());
    model.routeByModality({ numModalities: 2, mode: 'shared-attention' });
    const frozen = model.freezeBackbone();
    expect(frozen).toBe(Object.keys(model.stateDict()).filter((n) => !n.includes('.experts.')).length);
    const before = snapshot(model, () => true);
    const ids = idsTensor(randomIds(2, 6, 64, 25));
    const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
    const targets = idsTensor(randomIds(2, 6, 64, 26));
    const mask = tf.ones([2, 6]);
    train(model, () => causalLMLoss(model.forward({ inputIds: ids, tokenModality }).logits, targets, mask), 3);
    for (const [name, v] of model.namedParameters()) {
      const changed = !sameValues(before.get(name)!, v.dataSync());
      expect(changed, name).toBe(name.includes('.experts.1.'));
    }
    tf.dispose([ids, tokenModality, targets, mask]);
    model.dispose();
  });

  it('a modality-1 token sends no gradient to modality-0 FFN weights (and text sends none to the expert)', () => {
    const model = new CausalLM(tinyLlama());
    model.routeByModality({ numModalities: 2, parts: ['mlp'] });
    const ids = idsTensor(randomIds(2, 6, 64, 27));
    const tokenModality = tf.tensor2d(MODALITY, undefined, 'int32');
    const isImage = tf.tensor3d(MODALITY.map((row) => row.map((m) => [m])), undefined, 'float32'); // [B, T, 1]
    const textMlp = model.namedParameters().filter(([n]) => n.startsWith('model.layers.0.mlp.')).map(([, v]) => v);
    const expertMlp = model.namedParameters().filter(([n]) => n.startsWith('model.layers.0.experts.1.mlp.')).map(([, v]) => v);
    const gradNorms = (weight: tf.Tensor) => {
      // The stream after layer 0, at the selected positions only.
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward({ inputIds: ids, tokenModality }, { outputHiddenStates: true });
        return tf.sum(tf.mul(tf.square(out.hiddenStates![1]!), weight)) as tf.Scalar;
      }, [...textMlp, ...expertMlp]);
      const norm = (vars: tf.Variable[]) => vars.reduce((s, v) => s + (grads[v.name] ? tf.norm(grads[v.name]!).dataSync()[0]! : 0), 0);
      const result = { text: norm(textMlp), expert: norm(expertMlp) };
      tf.dispose([value, ...Object.values(grads)]);
      return result;
    };
    const fromImage = gradNorms(isImage);
    expect(fromImage.text).toBe(0);
    expect(fromImage.expert).toBeGreaterThan(1e-6);
    const isText = tf.sub(1, isImage);
    const fromText = gradNorms(isText);
    expect(fromText.expert).toBe(0);
    expect(fromText.text).toBeGreaterThan(1e-6);
    tf.dispose([ids, tokenModality, isImage, isText]);
    model.dispose();
  });

  it('extra heads: outputs by name, selection, parameter names and errors', () => {
    const model = new CausalLM(tinyLlama());
    const probe = model.addHead('probe', new ProbeHead(32, 3));
    model.addHead('other', new ProbeHead(32, 2));
    expect(Object.keys(model.stateDict())).toEqual(expect.arrayContaining(['heads.probe.proj.weight', 'heads.other.proj.bias']));
    expect(isExtensionParameter('heads.probe.proj.weight')).toBe(true);
    const ids = idsTensor(randomIds(2, 4, 64, 28));
    const out = model.forward({ inputIds: ids }, { lastLogitsOnly: true });
    expect(Object.keys(out.heads).sort()).toEqual(['other', 'probe']);
    const direct = probe.forward(out.hidden);
    expect(exactlyEqual(out.heads.probe!, direct)).toBe(true);
    expect(out.heads.probe!.shape).toEqual([2, 4, 3]); // heads read every position, even with lastLogitsOnly
    const only = model.forward({ inputIds: ids }, { heads: ['other'] });
    expect(Object.keys(only.heads)).toEqual(['other']);
    const none = model.forward({ inputIds: ids }, { heads: false });
    expect(none.heads).toEqual({});
    expect(() => model.forward({ inputIds: ids }, { heads: ['missing'] })).toThrow(/no head named missing/);
    expect(() => model.addHead('probe', new ProbeHead(32, 3))).toThrow(/already exists/);
    expect(() => model.addHead('a.b', new ProbeHead(32, 3))).toThrow(/letters, digits or '_'/);
    disposeOutput(out, only, none);
    tf.dispose([ids, direct]);
    model.dispose();
  });

  it('prefix adapters: HF-style names, the gate and the prompts get gradients, and v1 visual conditioning', () => {
    const model = new CausalLM(tinyLlama());
    const base = cloneModel(model);
    const [adapter0, adapter1] = model.addPrefixAdapter('all', { length: 4, conditionKey: 'visual' });
    expect(Object.keys(model.stateDict())).toEqual(
      expect.arrayContaining(['model.layers.0.prefix_adapter.prompts', 'model.layers.1.prefix_adapter.gate']),
    );
    expect(adapter0!.gate.shape).toEqual([4]); // one gate per head
    const ids = idsTensor(randomIds(2, 5, 64, 29));
    const visual = tf.randomNormal([2, 32], 0, 1, 'float32', 3);
    const targets = idsTensor(randomIds(2, 5, 64, 30));
    const mask = tf.ones([2, 5]);
    const loss = () => causalLMLoss(model.forward({ inputIds: ids, context: { visual } }).logits, targets, mask);
    const gradNorm = (v: tf.Variable) => {
      const { value, grads } = tf.variableGrads(loss, [v]);
      const n = grads[v.name] ? tf.norm(grads[v.name]!).dataSync()[0]! : 0;
      tf.dispose([value, ...Object.values(grads)]);
      return n;
    };
    expect(gradNorm(adapter0!.gate)).toBeGreaterThan(1e-6); // a zero gate still learns
    expect(gradNorm(adapter0!.prompts)).toBe(0); // ... while the closed gate passes nothing to the prompts
    const plain = base.forward({ inputIds: ids });
    const closed = model.forward({ inputIds: ids, context: { visual } });
    expect(exactlyEqual(closed.logits, plain.logits)).toBe(true);
    for (const a of [adapter0!, adapter1!]) a.gate.assign(tf.tensor1d([0.5, -0.3, 0.8, 0.2]));
    expect(gradNorm(adapter0!.prompts)).toBeGreaterThan(1e-6);
    const open = model.forward({ inputIds: ids, context: { visual } });
    expect(maxAbsDiff(open.logits, plain.logits)).toBeGreaterThan(1e-4);
    // The visual feature matters once the gate is open.
    const otherVisual = tf.randomNormal([2, 32], 0, 1, 'float32', 4);
    const other = model.forward({ inputIds: ids, context: { visual: otherVisual } });
    expect(maxAbsDiff(open.logits, other.logits)).toBeGreaterThan(1e-4);
    // Cached decoding with an open adapter equals the full forward.
    const cache = model.createCache(2);
    const pieces: tf.Tensor[] = [];
    for (const [start, size] of [[0, 2], [2, 1], [3, 2]] as const) {
      const step = tf.slice(ids, [0, start], [2, size]);
      const out = model.forward({ inputIds: step, cache, context: { visual } });
      pieces.push(out.logits);
      tf.dispose([step, out.hidden]);
    }
    const stepped = tf.concat(pieces, 1);
    expect(maxAbsDiff(stepped, open.logits)).toBeLessThan(1e-5);
    expect(() => model.forward({ inputIds: ids })).toThrow(/conditionKey 'visual' needs a tensor \[2, 32\]/);
    const wrong = tf.zeros([2, 3, 32]);
    expect(() => model.forward({ inputIds: ids, context: { visual: wrong } })).toThrow(/must be \[2, 32\] or \[2, 4, 32\]/);
    cache.dispose();
    disposeOutput(plain, closed, open, other);
    tf.dispose([ids, visual, otherVisual, targets, mask, stepped, wrong, ...pieces]);
    model.dispose();
    base.dispose();
  });

  it('a plain checkpoint loads into the fused model; freezeBackbone leaves exactly the extensions trainable', () => {
    const plain = new CausalLM(tinyLlama());
    const fused = new CausalLM(tinyLlama());
    fused.insertBlock(() => new GatedBlock(32), { layer: { every: 1 } });
    fused.addPrefixAdapter(1, { length: 2 });
    fused.routeByModality({ numModalities: 2, layers: 0, parts: ['mlp'] });
    fused.addHead('probe', new ProbeHead(32, 2));
    const { missing, unexpected } = fused.loadStateDict(plain.stateDict(), { strict: false });
    expect(unexpected).toEqual([]);
    expect(missing.sort()).toEqual(fused.extensionParameterNames().sort());
    expect(missing.every(isExtensionParameter)).toBe(true);
    expect(Object.keys(plain.stateDict()).some(isExtensionParameter)).toBe(false);
    fused.freezeBackbone();
    const trainable = fused.parameterSummary({ trainableOnly: true }).map((p) => p.name);
    expect(trainable.sort()).toEqual(fused.extensionParameterNames().sort());
    expect(trainable).toEqual(
      expect.arrayContaining(['model.inserted.after_0.gate', 'model.layers.1.prefix_adapter.gate', 'model.layers.0.experts.1.mlp.up_proj.weight', 'heads.probe.proj.weight']),
    );
    plain.dispose();
    fused.dispose();
  });

  it('layer selections, duplicate slots and routing misuse give clear errors', () => {
    expect(resolveLayers({ every: 2 }, 5, 't')).toEqual([1, 3]);
    expect(resolveLayers({ every: 2, start: 0 }, 5, 't')).toEqual([0, 2, 4]);
    expect(resolveLayers({ last: 2 }, 5, 't')).toEqual([3, 4]);
    expect(resolveLayers([3, 1, 3], 5, 't')).toEqual([1, 3]);
    expect(resolveLayers('all', 3, 't')).toEqual([0, 1, 2]);
    expect(() => resolveLayers(5, 5, 'insertBlock')).toThrow(/insertBlock: layer 5 does not exist; pass a layer index in \[0, 5\)/);
    expect(() => resolveLayers({ every: 0 }, 5, 't')).toThrow(/every must be a positive integer/);

    const model = new CausalLM(tinyLlama());
    model.insertBlock(new GatedBlock(32), { layer: 1 });
    expect(() => model.insertBlock(new GatedBlock(32), { layer: 1 })).toThrow(/already inserted as 'model.inserted.after_1'; give the new one a name/);
    const [named] = model.insertBlock(new GatedBlock(32), { layer: 1, name: 'second' });
    expect(named!.prefix).toBe('model.inserted.after_1_second');
    expect(() => model.routeByModality({ numModalities: 1 })).toThrow(/numModalities must be an integer >= 2/);
    expect(() => model.routeByModality({ numModalities: 2, mode: 'towers', parts: ['mlp'] })).toThrow(/'towers' mode copies whole layers/);
    expect(() => model.routeByModality({ numModalities: 2, parts: ['ffn' as never] })).toThrow(/parts must be distinct values/);
    const staleCache = model.createCache(1);
    model.routeByModality({ numModalities: 2, layers: 0, mode: 'towers' });
    expect(() => model.routeByModality({ numModalities: 2, layers: [0, 1] })).toThrow(/layers 0 are already routed/);
    const ids = idsTensor([[1, 2, 3]]);
    const badModality = tf.tensor2d([[0, 2, 1]], undefined, 'int32');
    expect(() => model.forward({ inputIds: ids, tokenModality: badModality })).toThrow(/tokenModality 2 at row 0, position 1 is outside \[0, 2\)/);
    expect(() => model.forward({ inputIds: ids, cache: staleCache })).toThrow(/cache from another model.*numLayers 3 vs 2/);
    const throwingBlockModel = new CausalLM(tinyLlama());
    class WrongShape extends Module {
      forward(hidden: tf.Tensor): tf.Tensor {
        return tf.slice(hidden, [0, 0, 0], [-1, -1, 8]);
      }
    }
    throwingBlockModel.insertBlock(new WrongShape(), { layer: 0, position: 'before' });
    const before = tf.memory().numTensors;
    expect(() => throwingBlockModel.forward({ inputIds: ids })).toThrow(/'model.inserted.before_0' must return the hidden states' shape \[1,3,32\], got \[1,3,8\]/);
    expect(tf.memory().numTensors).toBe(before);
    staleCache.dispose();
    tf.dispose([ids, badModality]);
    model.dispose();
    throwingBlockModel.dispose();
  });
});
