import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE, Module, causalBias } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync } from '@chimera/core/testing';
import { CausalLM } from '../src/model/causal-lm';
import { tinyLlama } from '../src/config';
import { exactlyEqual, idsTensor, maxAbsDiff, maxAbsDiffArrays, perturbNorms, randomIds, referenceLogits } from './model-helpers';

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('matches a float64 reference forward: untied GQA, tied, Qwen2 q/k/v biases, Llama attention_bias', () => {
    const variants = [
      tinyLlama(),
      tinyLlama({ tieWordEmbeddings: true, numKvHeads: 4 }),
      tinyLlama({ modelType: 'qwen2', attentionBias: true, ropeTheta: 1000 }),
      tinyLlama({ attentionBias: true, attentionOutBias: true, numKvHeads: 1, headDim: 4 }),
    ];
    for (const config of variants) {
      const model = new CausalLM(config);
      perturbNorms(model);
      const ids = randomIds(2, 6, config.vocabSize, 3);
      const input = idsTensor(ids);
      const { logits, hidden, heads } = model.forward({ inputIds: input });
      expect(logits.shape).toEqual([2, 6, config.vocabSize]);
      expect(hidden.shape).toEqual([2, 6, config.hiddenSize]);
      expect(heads).toEqual({});
      expect(maxAbsDiffArrays(logits, referenceLogits(model, ids))).toBeLessThan(1e-4);
      tf.dispose([input, logits, hidden]);
      model.dispose();
    }
  });

  it('state-dict names are HF names; lm_head.weight only when untied; biases as configured', () => {
    const untied = new CausalLM(tinyLlama({ numLayers: 1 }));
    const expected = [
      'model.embed_tokens.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.norm.weight',
      'lm_head.weight',
    ];
    expect(Object.keys(untied.stateDict()).sort()).toEqual([...expected].sort());
    expect(untied.stateDict()['lm_head.weight']!.shape).toEqual([32, 64]); // [in, out]
    expect(untied.stateDict()['model.layers.0.self_attn.k_proj.weight']!.shape).toEqual([32, 16]); // 2 KV heads of 8
    const tied = new CausalLM(tinyLlama({ numLayers: 1, tieWordEmbeddings: true }));
    expect(Object.keys(tied.stateDict())).not.toContain('lm_head.weight');
    expect(tied.lm_head).toBeNull();
    const qwen2 = new CausalLM(tinyLlama({ numLayers: 1, modelType: 'qwen2', attentionBias: true }));
    const names = Object.keys(qwen2.stateDict());
    for (const p of ['q', 'k', 'v']) expect(names).toContain(`model.layers.0.self_attn.${p}_proj.bias`);
    expect(names).not.toContain('model.layers.0.self_attn.o_proj.bias');
    const qwen3 = new CausalLM(tinyLlama({ numLayers: 1, modelType: 'qwen3', qkNorm: 'rms' }));
    expect(Object.keys(qwen3.stateDict())).toEqual(expect.arrayContaining(['model.layers.0.self_attn.q_norm.weight', 'model.layers.0.self_attn.k_norm.weight']));
    for (const m of [untied, tied, qwen2, qwen3]) m.dispose();
  });

  it('tied logits use the embedding table: changing it changes the logits, and no separate head exists', () => {
    const model = new CausalLM(tinyLlama({ tieWordEmbeddings: true }));
    const input = idsTensor(randomIds(1, 4, 64, 5));
    const { logits, hidden } = model.forward({ inputIds: input });
    const table = model.model.embed_tokens.weight;
    const expected = tf.matMul(tf.reshape(hidden, [4, 32]), tf.transpose(table));
    expect(maxAbsDiff(tf.reshape(logits, [4, 64]), expected)).toBeLessThan(1e-5);
    tf.dispose([input, logits, hidden, expected]);
    model.dispose();
  });

  it('lastLogitsOnly gives the last position of the full logits; hidden states have numLayers + 1 entries', () => {
    const model = new CausalLM(tinyLlama());
    const input = idsTensor(randomIds(2, 5, 64, 8));
    const full = model.forward({ inputIds: input }, { outputHiddenStates: true });
    const last = model.forward({ inputIds: input }, { lastLogitsOnly: true });
    expect(last.logits.shape).toEqual([2, 1, 64]);
    const fullLast = tf.slice(full.logits, [0, 4, 0], [2, 1, 64]);
    expect(maxAbsDiff(last.logits, fullLast)).toBeLessThan(1e-6);
    expect(full.hiddenStates).toHaveLength(3);
    const embeds = model.model.embed_tokens.forward(input);
    expect(exactlyEqual(full.hiddenStates![0]!, embeds)).toBe(true);
    // The last hidden state, normed, is `hidden`.
    const normed = model.model.norm.forward(full.hiddenStates![2]!);
    expect(exactlyEqual(normed, full.hidden)).toBe(true);
    tf.dispose([input, fullLast, embeds, normed, full.logits, full.hidden, ...full.hiddenStates!, last.logits, last.hidden]);
    model.dispose();
  });

  it('inputsEmbeds equal to the embedded ids give the same logits (bitwise)', () => {
    const model = new CausalLM(tinyLlama());
    const input = idsTensor(randomIds(2, 5, 64, 9));
    const embeds = model.model.embed_tokens.forward(input);
    const a = model.forward({ inputIds: input });
    const b = model.forward({ inputsEmbeds: embeds }, { outputHiddenStates: true });
    expect(exactlyEqual(a.logits, b.logits)).toBe(true);
    tf.dispose([input, a.logits, a.hidden, b.logits, b.hidden, ...b.hiddenStates!]);
    expect(embeds.isDisposed).toBe(false); // the caller's input is not handed back to be freed
    embeds.dispose();
    model.dispose();
  });

  it('the cached forward (prefill, then one token at a time) equals the full forward', () => {
    const model = new CausalLM(tinyLlama({ qkNorm: 'rms', modelType: 'llama' }));
    perturbNorms(model);
    const ids = randomIds(2, 7, 64, 10);
    const input = idsTensor(ids);
    const full = model.forward({ inputIds: input });
    const cache = model.createCache(2);
    const pieces: tf.Tensor[] = [];
    const prefill = tf.slice(input, [0, 0], [2, 3]);
    const prefilled = model.forward({ inputIds: prefill, cache });
    pieces.push(prefilled.logits);
    prefilled.hidden.dispose();
    for (let t = 3; t < 7; t++) {
      const step = tf.slice(input, [0, t], [2, 1]);
      const out = expectNoLeaksSync(() => model.forward({ inputIds: step, cache }, { lastLogitsOnly: true }), 'decode step');
      pieces.push(out.logits);
      tf.dispose([step, out.hidden]);
    }
    expect(cache.length).toBe(7);
    const stepped = tf.concat(pieces, 1);
    expect(maxAbsDiff(stepped, full.logits)).toBeLessThan(1e-5);
    cache.dispose();
    tf.dispose([input, prefill, full.logits, full.hidden, stepped, ...pieces]);
    model.dispose();
  });

  it('left padding: a padded row gives the logits of the same row alone, in the full and the cached forward', () => {
    const model = new CausalLM(tinyLlama());
    perturbNorms(model);
    const long = randomIds(1, 6, 64, 11)[0]!;
    const short = randomIds(1, 4, 64, 12)[0]!;
    const padded = idsTensor([long, [0, 0, ...short]]);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    const batch = model.forward({ inputIds: padded, paddingMask: mask });
    const aloneInput = idsTensor([short]);
    const alone = model.forward({ inputIds: aloneInput });
    const paddedRow = tf.slice(batch.logits, [1, 2, 0], [1, 4, 64]);
    expect(maxAbsDiff(paddedRow, alone.logits)).toBeLessThan(1e-5);
    const longInput = idsTensor([long]);
    const longAlone = model.forward({ inputIds: longInput });
    const firstRow = tf.slice(batch.logits, [0, 0, 0], [1, 6, 64]);
    expect(maxAbsDiff(firstRow, longAlone.logits)).toBeLessThan(1e-5);
    // Without the mask the padded row differs (the test can fail).
    const unmasked = model.forward({ inputIds: padded });
    const unmaskedRow = tf.slice(unmasked.logits, [1, 2, 0], [1, 4, 64]);
    expect(maxAbsDiff(unmaskedRow, alone.logits)).toBeGreaterThan(1e-3);

    // Cached: prefill the padded batch, then two more tokens; the mask grows with the sequence.
    const extra = [[5, 6], [7, 8]];
    const cache = model.createCache(2);
    const prefill = model.forward({ inputIds: padded, paddingMask: mask, cache }, { lastLogitsOnly: true });
    const steps: tf.Tensor[] = [];
    for (let s = 0; s < 2; s++) {
      const step = idsTensor(extra.map((row) => [row[s]!]));
      const stepMask = tf.concat([mask, tf.ones([2, s + 1])], 1);
      const out = expectNoLeaksSync(() => model.forward({ inputIds: step, paddingMask: stepMask, cache }, { lastLogitsOnly: true }), 'padded decode');
      steps.push(out.logits);
      tf.dispose([step, stepMask, out.hidden]);
    }
    const shortFullInput = idsTensor([[...short, 7, 8]]);
    const shortFull = model.forward({ inputIds: shortFullInput });
    for (let s = 0; s < 2; s++) {
      const got = tf.slice(steps[s]!, [1, 0, 0], [1, 1, 64]);
      const want = tf.slice(shortFull.logits, [0, 4 + s, 0], [1, 1, 64]);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      tf.dispose([got, want]);
    }
    cache.dispose();
    tf.dispose([padded, mask, batch.logits, batch.hidden, aloneInput, alone.logits, alone.hidden, paddedRow, longInput, longAlone.logits]);
    tf.dispose([longAlone.hidden, firstRow, unmasked.logits, unmasked.hidden, unmaskedRow, prefill.logits, prefill.hidden, ...steps]);
    tf.dispose([shortFullInput, shortFull.logits, shortFull.hidden]);
    model.dispose();
  });

  it('a caller-supplied attention bias replaces the default; the causal + padding bias reproduces paddingMask', () => {
    const model = new CausalLM(tinyLlama());
    const input = idsTensor(randomIds(2, 4, 64, 13));
    const mask = tf.tensor2d([[1, 1, 1, 1], [0, 1, 1, 1]]);
    const viaMask = model.forward({ inputIds: input, paddingMask: mask });
    const pad = [[0, 0, 0, 0], [MASK_VALUE, 0, 0, 0]];
    const causal = causalBias(4, 4);
    const bias = tf.reshape(tf.add(causal, tf.reshape(tf.tensor2d(pad), [2, 1, 4])), [2, 1, 4, 4]);
    const viaBias = model.forward({ inputIds: input, attentionBias: bias, positions: tf.tensor2d([[0, 1, 2, 3], [0, 0, 1, 2]], undefined, 'int32') });
    expect(maxAbsDiff(viaMask.logits, viaBias.logits)).toBeLessThan(1e-6);
    // A bidirectional bias (all zeros) is honoured: the first position now sees the future.
    const open = tf.zeros([1, 1, 4, 4]);
    const bidirectional = model.forward({ inputIds: input, attentionBias: open });
    const plain = model.forward({ inputIds: input });
    const first = (t: tf.Tensor) => tf.slice(t, [0, 0, 0], [2, 1, 64]);
    expect(maxAbsDiff(first(bidirectional.logits), first(plain.logits))).toBeGreaterThan(1e-4);
    tf.dispose([input, mask, causal, bias, open]);
    for (const o of [viaMask, viaBias, bidirectional, plain]) tf.dispose([o.logits, o.hidden]);
    model.dispose();
  });

  it('M-RoPE: [3, B, T] positions are accepted; equal axes reproduce 1-D positions; other axes change the logits', () => {
    const model = new CausalLM(tinyLlama({ mropeSections: [2, 1, 1] })); // headDim 8: 4 rotating pairs
    const input = idsTensor(randomIds(2, 5, 64, 14));
    const seq = [0, 1, 2, 3, 4];
    const oneD = model.forward({ inputIds: input });
    const same = tf.tensor3d([[seq, seq], [seq, seq], [seq, seq]], undefined, 'int32');
    const threeD = model.forward({ inputIds: input, positions: same });
    expect(exactlyEqual(oneD.logits, threeD.logits)).toBe(true);
    const image = tf.tensor3d([[seq, seq], [[0, 0, 1, 1, 2], seq], [[0, 1, 0, 1, 2], seq]], undefined, 'int32');
    const grid = model.forward({ inputIds: input, positions: image });
    expect(maxAbsDiff(grid.logits, oneD.logits)).toBeGreaterThan(1e-4);
    const plainModel = new CausalLM(tinyLlama());
    expect(() => plainModel.forward({ inputIds: input, positions: same })).toThrow(/3-D positions need a config with mropeSections/);
    tf.dispose([input, same, image]);
    for (const o of [oneD, threeD, grid]) tf.dispose([o.logits, o.hidden]);
    model.dispose();
    plainModel.dispose();
  });

  it('clear errors for bad inputs, with no leaked tensors', () => {
    const model = new CausalLM(tinyLlama({ maxPositionEmbeddings: 8 }));
    const ok = idsTensor([[1, 2, 3]]);
    const outOfVocab = idsTensor([[1, 64, 3]]);
    const tooLong = idsTensor([Array.from({ length: 9 }, () => 1)]);
    const wrongWidth = tf.zeros([1, 3, 16]);
    const embeds = tf.zeros([1, 3, 32]);
    const badMask = tf.ones([1, 4]);
    const badPositions = tf.zeros([1, 4], 'int32');
    const badBias = tf.zeros([1, 1, 3, 4]);
    const badModality = tf.zeros([1, 3]);
    const otherModel = new CausalLM(tinyLlama({ numKvHeads: 4 }));
    const foreignCache = otherModel.createCache(1);
    const cache = model.createCache(1);
    const before = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: outOfVocab })).toThrow(/id 64 .* outside the vocabulary \[0, 64\)/);
    expect(() => model.forward({ inputIds: tooLong })).toThrow(/9 tokens exceed maxPositionEmbeddings \(8\)/);
    expect(() => model.forward({ inputsEmbeds: wrongWidth })).toThrow(/inputsEmbeds must be float32 \[B, T, 32\].*\[1,3,16\]/);
    expect(() => model.forward({ inputIds: ok, inputsEmbeds: embeds })).toThrow(/exactly one of inputIds .* got both/);
    expect(() => model.forward({})).toThrow(/got neither/);
    expect(() => model.forward({ inputIds: ok, paddingMask: badMask })).toThrow(/paddingMask must be \[1, 3\]/);
    expect(() => model.forward({ inputIds: ok, positions: badPositions })).toThrow(/positions must be int32 \[1, 3\]/);
    expect(() => model.forward({ inputIds: ok, attentionBias: badBias })).toThrow(/attentionBias must be \[1 or 1, 1 or 4, 3, 3\]/);
    expect(() => model.forward({ inputIds: ok, cache: foreignCache })).toThrow(/cache from another model/);
    expect(() => model.forward({ inputIds: ok, tokenModality: badModality })).toThrow(/tokenModality must be int32 \[1, 3\].*float32 \[1,3\]/);
    expect(tf.memory().numTensors).toBe(before);
    // Over the limit together with the cache.
    const first = model.forward({ inputIds: ok, cache });
    tf.dispose([first.logits, first.hidden]);
    const six = idsTensor([[1, 2, 3, 4, 5, 6]]);
    const beforeCached = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: six, cache })).toThrow(/3 cached \+ 6 tokens exceed maxPositionEmbeddings \(8\)/);
    expect(() => model.forward({ inputIds: ok, cache, paddingMask: badMask })).toThrow(/3 cached \+ 3 new tokens/);
    expect(tf.memory().numTensors).toBe(beforeCached);
    cache.dispose();
    foreignCache.dispose();
    tf.dispose([ok, outOfVocab, tooLong, wrongWidth, embeds, badMask, badPositions, badBias, badModality, six]);
    model.dispose();
    otherModel.dispose();
  });

  it('no leaks: forward, cached forward, and an error thrown midway through the layers', () => {
    const model = new CausalLM(tinyLlama());
    const input = idsTensor(randomIds(2, 4, 64, 15));
    const mask = tf.ones([2, 4]);
    const out = expectNoLeaksSync(() => model.forward({ inputIds: input, paddingMask: mask }, { outputHiddenStates: true }), 'forward');
    tf.dispose([out.logits, out.hidden, ...out.hiddenStates!]);
    const cache = model.createCache(2);
    const before = tf.memory().numTensors;
    const prefill = model.forward({ inputIds: input, cache });
    tf.dispose([prefill.logits, prefill.hidden]);
    // The cache now holds keys and values for each of the 2 layers, and nothing else was left behind.
    expect(tf.memory().numTensors).toBe(before + 4);
    const step = tf.slice(input, [0, 0], [2, 1]);
    const decoded = expectNoLeaksSync(() => model.forward({ inputIds: step, cache }, { lastLogitsOnly: true }), 'cached decode step');
    tf.dispose([step, decoded.logits, decoded.hidden]);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // A block that throws after layer 0 has run: everything made so far is freed.
    class ThrowingBlock extends Module {
      forward(): tf.Tensor {
        throw new Error('block failed');
      }
    }
    model.insertBlock(new ThrowingBlock(), { layer: 1, position: 'before' });
    const beforeThrow = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: input, paddingMask: mask })).toThrow(/block failed/);
    expect(tf.memory().numTensors).toBe(beforeThrow);
    tf.dispose([input, mask]);
    model.dispose();
  });

  it('resizeTokenEmbeddings keeps old rows, adds mean-like rows, keeps ties, and updates the config', () => {
    for (const tie of [false, true]) {
      const model = new CausalLM(tinyLlama({ tieWordEmbeddings: tie }));
      const input = idsTensor(randomIds(1, 4, 64, 16));
      const before = model.forward({ inputIds: input });
      const oldTable = tf.clone(model.model.embed_tokens.weight);
      model.resizeTokenEmbeddings(70);
      expect(model.config.vocabSize).toBe(70);
      const table = model.model.embed_tokens.weight;
      expect(table.shape).toEqual([70, 32]);
      const kept = tf.slice(table, [0, 0], [64, 32]);
      expect(exactlyEqual(kept, oldTable)).toBe(true);
      const added = tf.slice(table, [64, 0], [6, 32]);
      const mean = tf.mean(oldTable, 0, true);
      expect(maxAbsDiff(added, tf.tile(mean, [6, 1]))).toBeLessThan(0.01); // mean + noise of 1% of the std
      expect(maxAbsDiff(added, tf.tile(mean, [6, 1]))).toBeGreaterThan(0);
      if (tie) expect(model.lm_head).toBeNull();
      else expect(model.lm_head!.weight.shape).toEqual([32, 70]);
      const after = model.forward({ inputIds: input });
      expect(after.logits.shape).toEqual([1, 4, 70]);
      const oldColumns = tf.slice(after.logits, [0, 0, 0], [1, 4, 64]);
      expect(maxAbsDiff(oldColumns, before.logits)).toBeLessThan(1e-6);
      expect(() => model.resizeTokenEmbeddings(0)).toThrow(/vocabSize must be a positive integer/);
      tf.dispose([input, before.logits, before.hidden, oldTable, kept, added, mean, after.logits, after.hidden, oldColumns]);
      model.dispose();
    }
  });
});
