import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList, globToRegExp, matchName } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { LayerNorm } from '../src/nn/norm';
import { setupTestBackend } from '../src/testing/backend';
import { expectNoLeaks, expectNoLeaksSync } from '../src/testing/leaks';

// Test-only modules built from the base API, shaped like a small decoder.
class Mlp extends Module {
  readonly up: Linear;
  readonly down: Linear;
  constructor(dim: number) {
    super();
    this.up = this.addModule('up_proj', new Linear(dim, 2 * dim));
    this.down = this.addModule('down_proj', new Linear(2 * dim, dim, { bias: false }));
  }
}

class Block extends Module {
  readonly norm: LayerNorm;
  readonly mlp: Mlp;
  readonly steps: tf.Variable;
  constructor(dim: number) {
    super();
    this.norm = this.addModule('input_layernorm', new LayerNorm(dim));
    this.mlp = this.addModule('mlp', new Mlp(dim));
    this.steps = this.addBuffer('steps', tf.zeros([1]));
  }
}

class Tiny extends Module {
  readonly embed: tf.Variable;
  readonly layers: Block[];
  readonly head: Linear;
  constructor(dim = 3, depth = 2) {
    super();
    this.embed = this.addParameter('embed', tf.randomNormal([5, dim], 0, 1, 'float32', 3));
    this.layers = this.addModuleList(
      'layers',
      Array.from({ length: depth }, () => new Block(dim)),
    );
    this.head = this.addModule('lm_head', new Linear(dim, 5));
  }
  exposeAddParameter(name: string, t: tf.Tensor): tf.Variable {
    return this.addParameter(name, t);
  }
  exposeAddModule(name: string, m: Module): Module {
    return this.addModule(name, m);
  }
  exposeReplaceParameter(name: string, t: tf.Tensor): tf.Variable {
    return this.replaceParameter(name, t);
  }
}

const blockParams = (i: number) => [
  `layers.${i}.input_layernorm.weight`,
  `layers.${i}.input_layernorm.bias`,
  `layers.${i}.mlp.up_proj.weight`,
  `layers.${i}.mlp.up_proj.bias`,
  `layers.${i}.mlp.down_proj.weight`,
];
const allParams = ['embed', ...blockParams(0), ...blockParams(1), 'lm_head.weight', 'lm_head.bias'];

/** A state dict of fresh tensors with the model's shapes, filled with `value + index`. */
function freshState(model: Module, value: number): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  Object.entries(model.stateDict()).forEach(([name, t], i) => (out[name] = tf.fill(t.shape, value + i)));
  return out;
}

function snapshot(model: Module): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(model.stateDict())) out[name] = Array.from(t.dataSync());
  return out;
}

function disposeAll(state: Record<string, tf.Tensor>): void {
  Object.values(state).forEach((t) => t.dispose());
}

describe('Module', () => {
  beforeAll(() => setupTestBackend('cpu'));

  describe('names', () => {
    it('derives dotted parameter names in registration order, with ModuleList indices', () => {
      const model = new Tiny();
      expect(model.namedParameters().map(([n]) => n)).toEqual(allParams);
      expect(model.namedBuffers().map(([n]) => n)).toEqual(['layers.0.steps', 'layers.1.steps']);
      expect(Object.keys(model.stateDict()).sort()).toEqual([...allParams, 'layers.0.steps', 'layers.1.steps'].sort());
      model.dispose();
    });

    it('lists modules by path, the root as the empty path', () => {
      const model = new Tiny(3, 1);
      const paths = model.namedModules().map(([p, m]) => `${p}:${m.constructor.name}`);
      expect(paths).toEqual([
        ':Tiny',
        'layers:ModuleList',
        'layers.0:Block',
        'layers.0.input_layernorm:LayerNorm',
        'layers.0.mlp:Mlp',
        'layers.0.mlp.up_proj:Linear',
        'layers.0.mlp.down_proj:Linear',
        'lm_head:Linear',
      ]);
      expect(model.children().map(([n]) => n)).toEqual(['layers', 'lm_head']);
      expect((model.children()[0]![1] as ModuleList).items).toBe(model.layers);
      model.dispose();
    });

    it('stateDict returns the live variables', () => {
      const model = new Tiny();
      expect(model.stateDict()['lm_head.weight']).toBe(model.head.weight);
      expect(model.stateDict()['layers.1.steps']).toBe(model.layers[1]!.steps);
      model.dispose();
    });

    it('rejects dotted, empty and duplicate names', () => {
      const model = new Tiny();
      tf.tidy(() => {
        expect(() => model.exposeAddParameter('a.b', tf.zeros([1]))).toThrow(/invalid .*'a\.b'/);
        expect(() => model.exposeAddParameter('', tf.zeros([1]))).toThrow(/invalid/);
        expect(() => model.exposeAddParameter('embed', tf.zeros([1]))).toThrow(/'embed' is already registered/);
      });
      expect(() => model.exposeAddModule('lm_head', new ModuleList([]))).toThrow(/'lm_head' is already registered/);
      model.dispose();
    });
  });

  describe('globs', () => {
    it('* stays within one segment, ** crosses segments, other characters are literal', () => {
      expect(globToRegExp('layers.*.mlp').test('layers.12.mlp')).toBe(true);
      expect(globToRegExp('layers.*.mlp').test('layers.1.2.mlp')).toBe(false);
      expect(globToRegExp('layers.**.weight').test('layers.1.mlp.up_proj.weight')).toBe(true);
      expect(globToRegExp('a.b').test('aXb')).toBe(false);
      expect(globToRegExp('a+(b)').test('a+(b)')).toBe(true);
    });

    it('matchName treats a bare name as a prefix, with or without wildcards', () => {
      expect(matchName('layers.0', 'layers.0.mlp.up_proj.weight')).toBe(true);
      expect(matchName('layers.0', 'layers.01.mlp.up_proj.weight')).toBe(false);
      expect(matchName('layers.*.mlp', 'layers.1.mlp.up_proj.weight')).toBe(true);
      expect(matchName('layers.*.mlp', 'layers.1.input_layernorm.weight')).toBe(false);
      expect(matchName(/norm/, 'layers.1.input_layernorm.weight')).toBe(true);
      expect(matchName((n) => n.endsWith('bias'), 'lm_head.bias')).toBe(true);
    });
  });

  describe('loadStateDict', () => {
    it('copies every value into the right variable, and the caller keeps its tensors', () => {
      const model = new Tiny();
      const state = freshState(model, 10);
      const result = model.loadStateDict(state);
      expect(result).toEqual({ missing: [], unexpected: [] });
      const loaded = snapshot(model);
      Object.keys(model.stateDict()).forEach((name, i) => expect(new Set(loaded[name])).toEqual(new Set([10 + i])));
      disposeAll(state);
      // Disposing the source does not affect the loaded parameters.
      expect(model.head.bias!.dataSync()[0]).toBe(snapshot(model)['lm_head.bias']![0]);
      expect(model.head.bias!.isDisposed).toBe(false);
      model.dispose();
    });

    it('strict: reports missing, unexpected and wrong-shape keys in one error and assigns nothing', () => {
      const model = new Tiny();
      const before = snapshot(model);
      const state = freshState(model, 1);
      state['layers.0.mlp.up_proj.weight']!.dispose();
      state['layers.0.mlp.up_proj.weight'] = tf.zeros([4, 4]); // wrong shape
      state['lm_head.bias']!.dispose();
      delete state['lm_head.bias']; // missing
      state['vision_tower.proj'] = tf.zeros([2]); // unexpected
      let message = '';
      try {
        model.loadStateDict(state);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/wrong shape \(1\): layers\.0\.mlp\.up_proj\.weight: expected \[3, 6\], got \[4, 4\]/);
      expect(message).toMatch(/missing \(1\): lm_head\.bias/);
      expect(message).toMatch(/unexpected \(1\): vision_tower\.proj/);
      expect(snapshot(model)).toEqual(before);
      disposeAll(state);
      model.dispose();
    });

    it('strict: a dict that is only missing keys still fails and suggests strict: false', () => {
      const model = new Tiny();
      const before = snapshot(model);
      const state = { embed: tf.ones([5, 3]) };
      expect(() => model.loadStateDict(state)).toThrow(/missing \(\d+\):[^]*strict: false/);
      expect(snapshot(model)).toEqual(before);
      disposeAll(state);
      model.dispose();
    });

    it('non-strict loads a partial dict, ignores extras and reports both', () => {
      const model = new Tiny();
      const before = snapshot(model);
      const state = { 'layers.1.mlp.down_proj.weight': tf.fill([6, 3], 7), extra: tf.zeros([1]) };
      const result = model.loadStateDict(state, { strict: false });
      expect(result.unexpected).toEqual(['extra']);
      expect(result.missing).toEqual(
        Object.keys(model.stateDict()).filter((k) => k !== 'layers.1.mlp.down_proj.weight'),
      );
      const after = snapshot(model);
      for (const name of Object.keys(before)) {
        if (name === 'layers.1.mlp.down_proj.weight') expect(after[name]).toEqual(new Array(18).fill(7));
        else expect(after[name]).toEqual(before[name]);
      }
      disposeAll(state);
      model.dispose();
    });

    it('a wrong shape fails even when not strict, and nothing is assigned', () => {
      const model = new Tiny();
      const before = snapshot(model);
      const state = { embed: tf.ones([5, 3]), 'lm_head.bias': tf.ones([4]) };
      expect(() => model.loadStateDict(state, { strict: false })).toThrow(/lm_head\.bias: expected \[5\], got \[4\]/);
      expect(snapshot(model)).toEqual(before);
      disposeAll(state);
      model.dispose();
    });

    it('keys that are names of Object.prototype members are plain unexpected keys', () => {
      const model = new Tiny();
      const state = freshState(model, 0);
      state['constructor'] = tf.zeros([1]);
      expect(() => model.loadStateDict(state)).toThrow(/unexpected \(1\): constructor/);
      expect(model.loadStateDict(state, { strict: false }).unexpected).toEqual(['constructor']);
      disposeAll(state);
      model.dispose();
    });

    it('casts another dtype to the variable dtype without leaking', async () => {
      const model = new Tiny();
      const ints = { 'lm_head.bias': tf.tensor1d([1, 2, 3, 4, 5], 'int32') };
      await expectNoLeaks(() => {
        model.loadStateDict(ints, { strict: false });
      }, 'loadStateDict with a cast');
      expect(model.head.bias!.dtype).toBe('float32');
      expect(Array.from(model.head.bias!.dataSync())).toEqual([1, 2, 3, 4, 5]);
      disposeAll(ints);
      model.dispose();
    });

    it('round-trips through another model of the same architecture', () => {
      const a = new Tiny();
      const b = new Tiny();
      b.loadStateDict(a.stateDict());
      expect(snapshot(b)).toEqual(snapshot(a));
      a.dispose();
      expect(b.head.weight.isDisposed).toBe(false);
      expect(b.head.weight.dataSync().length).toBe(15);
      b.dispose();
    });
  });

  describe('freezing', () => {
    const trainableNames = (m: Module) =>
      m
        .namedParameters()
        .filter(([, v]) => v.trainable)
        .map(([n]) => n);

    it('freezes by glob across ModuleList indices', () => {
      const model = new Tiny();
      expect(model.freeze('layers.*.mlp.**')).toBe(6);
      expect(trainableNames(model)).toEqual([
        'embed',
        'layers.0.input_layernorm.weight',
        'layers.0.input_layernorm.bias',
        'layers.1.input_layernorm.weight',
        'layers.1.input_layernorm.bias',
        'lm_head.weight',
        'lm_head.bias',
      ]);
      expect(model.unfreeze('layers.1.mlp.**')).toBe(3);
      expect(trainableNames(model)).toContain('layers.1.mlp.down_proj.weight');
      expect(trainableNames(model)).not.toContain('layers.0.mlp.down_proj.weight');
      model.dispose();
    });

    it('freezes by RegExp, by predicate and by bare prefix; everything by default', () => {
      const model = new Tiny();
      expect(model.freeze(/\.bias$/)).toBe(5);
      expect(trainableNames(model).some((n) => n.endsWith('.bias'))).toBe(false);
      model.unfreeze();
      expect(model.freeze((n) => n.startsWith('lm_head'))).toBe(2);
      model.unfreeze();
      expect(model.freeze('layers.0')).toBe(5);
      expect(trainableNames(model).filter((n) => n.startsWith('layers.0'))).toEqual([]);
      expect(trainableNames(model).filter((n) => n.startsWith('layers.1')).length).toBe(5);
      model.freeze();
      expect(trainableNames(model)).toEqual([]);
      expect(model.unfreeze()).toBe(allParams.length);
      model.dispose();
    });

    it('trainableVariables lists exactly the trainable parameters, never buffers, in a stable order', () => {
      const model = new Tiny();
      model.freeze('layers.**');
      const vars = model.trainableVariables();
      expect(vars).toEqual([model.embed, model.head.weight, model.head.bias]);
      expect(vars.every((v) => v.trainable)).toBe(true);
      expect(vars).not.toContain(model.layers[0]!.steps);
      model.dispose();
    });

    it('parameterSummary and countParameters count what is there', () => {
      const model = new Tiny(); // dim 3: embed 15; per block LN 3+3, up 3*6+6, down 6*3; head 3*5+5
      const perBlock = 6 + 24 + 18;
      const total = 15 + 2 * perBlock + 20;
      expect(model.countParameters()).toBe(total);
      const summary = model.parameterSummary();
      expect(summary.length).toBe(allParams.length);
      expect(summary.find((p) => p.name === 'layers.1.mlp.up_proj.weight')).toEqual({
        name: 'layers.1.mlp.up_proj.weight',
        shape: [3, 6],
        count: 18,
        trainable: true,
      });
      model.freeze('layers.**');
      expect(model.countParameters({ trainableOnly: true })).toBe(35);
      expect(model.parameterSummary({ trainableOnly: true }).map((p) => p.name)).toEqual([
        'embed',
        'lm_head.weight',
        'lm_head.bias',
      ]);
      expect(model.countParameters()).toBe(total);
      model.dispose();
    });
  });

  describe('replaceParameter', () => {
    it('swaps in a tensor of another shape, keeps the name and the trainable flag, and frees the old one', () => {
      const model = new Tiny();
      model.freeze('embed');
      const old = model.embed;
      const before = tf.memory().numTensors;
      const replaced = model.exposeReplaceParameter('embed', tf.ones([7, 3]));
      expect(tf.memory().numTensors).toBe(before);
      expect(old.isDisposed).toBe(true);
      expect(replaced.shape).toEqual([7, 3]);
      expect(replaced.trainable).toBe(false);
      expect(model.stateDict()['embed']).toBe(replaced);
      expect(model.namedParameters()[0]![0]).toBe('embed');
      tf.tidy(() => {
        expect(() => model.exposeReplaceParameter('nope', tf.ones([1]))).toThrow(/no parameter 'nope' to replace/);
      });
      model.dispose();
    });
  });

  describe('shared children', () => {
    it('a module registered twice appears under both names in the state dict but once for the optimizer', () => {
      const model = new Tiny();
      const shared = new Linear(3, 3);
      model.exposeAddModule('tied_a', shared);
      model.exposeAddModule('tied_b', shared);
      expect(Object.keys(model.stateDict())).toEqual(expect.arrayContaining(['tied_a.weight', 'tied_b.weight']));
      const vars = model.trainableVariables();
      expect(vars.filter((v) => v === shared.weight).length).toBe(1);
      expect(model.countParameters()).toBe(15 + 2 * 48 + 20 + 12);
      const before = tf.memory().numTensors;
      expect(() => model.dispose()).not.toThrow();
      expect(before - tf.memory().numTensors).toBe(allParams.length + 2 + 2);
    });
  });

  describe('modes and lifetime', () => {
    it('train() and eval() reach every module in the tree', () => {
      const model = new Tiny();
      expect(model.namedModules().every(([, m]) => m.training)).toBe(true);
      expect(model.eval()).toBe(model);
      expect(model.namedModules().every(([, m]) => !m.training)).toBe(true);
      expect(model.layers[1]!.mlp.up.training).toBe(false);
      model.train();
      expect(model.namedModules().every(([, m]) => m.training)).toBe(true);
      model.train(false);
      expect(model.layers[0]!.norm.training).toBe(false);
      model.dispose();
    });

    it('dispose frees every parameter and buffer', () => {
      const before = tf.memory().numTensors;
      const model = new Tiny();
      const vars = [...model.namedParameters(), ...model.namedBuffers()].map(([, v]) => v);
      expect(tf.memory().numTensors - before).toBe(allParams.length + 2);
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect(vars.every((v) => v.isDisposed)).toBe(true);
      expect(model.namedParameters()).toEqual([]);
    });

    it('a forward through registered layers leaks nothing', () => {
      const model = new Tiny();
      const x = tf.ones([2, 3]);
      const y = expectNoLeaksSync(() =>
        tf.tidy(() => model.layers[0]!.mlp.down.forward(model.layers[0]!.mlp.up.forward(x))),
      );
      expect(y.shape).toEqual([2, 3]);
      y.dispose();
      x.dispose();
      model.dispose();
    });
  });
});
