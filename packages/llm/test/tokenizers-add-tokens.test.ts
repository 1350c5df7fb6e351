import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Embedding, Linear } from '@chimera/core';
import { setupTestBackend, TEST_BACKENDS, expectNoLeaksSync } from '@chimera/core/testing';
import { addTokensToModel } from '../src/tokenizers/add-tokens';
import { SpecialTokenRegistry } from '../src/tokenizers/special-tokens';
import { ByteTokenizer } from '../src/tokenizers/byte-tokenizer';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { byteLevelBpeFiles } from './tokenizers-fixtures';

/** A tiny LM built from core's Embedding + untied Linear head, resizing both the way the real model does. */
class StubLM {
  readonly config: { vocabSize: number };
  readonly embed: Embedding;
  head: Linear; // weight [dim, vocab]
  resizeCalls: number[] = [];

  constructor(vocabSize: number, readonly dim: number) {
    this.config = { vocabSize };
    this.embed = new Embedding(vocabSize, dim, { std: 1 });
    this.head = new Linear(dim, vocabSize, { bias: false });
  }

  resizeTokenEmbeddings(newVocab: number): void {
    this.resizeCalls.push(newVocab);
    this.embed.resize(newVocab);
    const old = this.head.weight;
    const grown = tf.tidy(() => {
      const mean = tf.mean(old, 1, true); // [dim, 1]
      const extra = tf.add(
        tf.tile(mean, [1, newVocab - old.shape[1]!]),
        tf.mul(tf.randomNormal([this.dim, newVocab - old.shape[1]!]), 1e-3),
      );
      return tf.concat([old, extra], 1);
    });
    const head = new Linear(this.dim, newVocab, { bias: false, weightInit: grown });
    this.head.dispose();
    this.head = head;
    this.config.vocabSize = newVocab;
  }

  dispose(): void {
    this.embed.dispose();
    this.head.dispose();
  }
}

const rows = (t: tf.Tensor) => t.arraySync() as number[][];

describe.each(TEST_BACKENDS)('addTokensToModel on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('grows embedding and head, keeps the old rows, and starts new rows near the mean', () => {
    const tokenizer = new ByteTokenizer(); // 259 ids
    const model = new StubLM(tokenizer.vocabSize, 16);
    const embedBefore = rows(model.embed.weight);
    const headBefore = rows(model.head.weight);
    const ids = expectNoLeaksSync(() => addTokensToModel(tokenizer, model, ['<image>', '<boi>', '<eoi>', '<image>']));
    expect(ids).toEqual([259, 260, 261, 259]);
    expect(tokenizer.vocabSize).toBe(262);
    expect(model.config.vocabSize).toBe(262);
    expect(model.resizeCalls).toEqual([262]);
    expect(tokenizer.specialTokens.get('<boi>')).toBe(260);

    const embedAfter = rows(model.embed.weight);
    expect(embedAfter).toHaveLength(262);
    expect(embedAfter.slice(0, 259)).toEqual(embedBefore);
    const mean = embedBefore[0]!.map((_, d) => embedBefore.reduce((sum, row) => sum + row[d]!, 0) / embedBefore.length);
    for (const row of embedAfter.slice(259)) {
      row.forEach((value, d) => expect(Math.abs(value - mean[d]!)).toBeLessThan(0.1)); // table std is 1; noise ~0.01
      expect(row).not.toEqual(mean); // noise breaks the tie between new tokens
    }
    const headAfter = rows(model.head.weight);
    headAfter.forEach((row, d) => {
      expect(row.slice(0, 259)).toEqual(headBefore[d]);
      const columnMean = headBefore[d]!.reduce((sum, value) => sum + value, 0) / 259;
      for (const value of row.slice(259)) expect(Math.abs(value - columnMean)).toBeLessThan(0.01);
    });
    // The model embeds the new ids.
    const embedded = model.embed.forward(tf.tensor1d([261], 'int32'));
    expect(embedded.shape).toEqual([1, 16]);
    embedded.dispose();
    model.dispose();
  });

  it('does not resize when nothing new fits outside the model, and never shrinks', () => {
    const tokenizer = new ByteTokenizer();
    const model = new StubLM(tokenizer.vocabSize, 4);
    expect(addTokensToModel(tokenizer, model, ['<s>', '<pad>'])).toEqual([256, 258]);
    expect(model.resizeCalls).toEqual([]);
    // A model padded past the tokenizer (as Qwen2's is) already has rows for new ids.
    const padded = new StubLM(300, 4);
    expect(addTokensToModel(tokenizer, padded, ['<image>'])).toEqual([259]);
    expect(padded.resizeCalls).toEqual([]);
    expect(padded.config.vocabSize).toBe(300);
    model.dispose();
    padded.dispose();
  });

  it('works with an HF tokenizer and the registry', () => {
    const files = byteLevelBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const model = new StubLM(tokenizer.vocabSize, 4);
    const registry = new SpecialTokenRegistry();
    const roles = ['image', 'imageStart', 'imageEnd', 'pad'] as const;
    addTokensToModel(
      tokenizer,
      model,
      registry.contents(roles.filter((role) => registry.idOf(tokenizer, role) === undefined)),
    );
    expect(model.config.vocabSize).toBe(267);
    expect(roles.map((role) => registry.idOf(tokenizer, role))).toEqual([264, 265, 266, tokenizer.padTokenId]);
    expect(tokenizer.encode('<boi><image><eoi>')).toEqual([265, 264, 266]);
    model.dispose();
  });

  it('fails loudly when the model does not update its config', () => {
    const tokenizer = new ByteTokenizer();
    const broken = { config: { vocabSize: tokenizer.vocabSize }, resizeTokenEmbeddings: () => undefined };
    expect(() => addTokensToModel(tokenizer, broken, ['<new>'])).toThrow(/left config.vocabSize at 259/);
  });
});
