import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setupTestBackend, Rng } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { CausalLM } from '../src/model/causal-lm';
import { generate } from '../src/generation/generate';
import { streamGenerate } from '../src/generation/streaming';
import type { GenerateOptions } from '../src/generation/options';
import type { GenerationPrompts } from '../src/generation/batch-prompts';

describe('generate: bad input fails before any work, with a clear error', () => {
  let model: CausalLM;
  beforeAll(async () => {
    await setupTestBackend('cpu');
    model = new CausalLM(tinyLlama({ maxPositionEmbeddings: 16 })); // vocab 64, width 32
  });

  /** The call throws synchronously (streamGenerate checks at once), generate rejects, and no tensor is made. */
  async function expectError(prompts: GenerationPrompts, options: GenerateOptions, message: string | RegExp): Promise<void> {
    const before = tf.memory().numTensors;
    expect(() => streamGenerate(model, prompts, options)).toThrow(message);
    await expect(generate(model, prompts, options)).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  }

  it('lengths: a prompt over maxPositionEmbeddings, prompt + maxNewTokens over it, no limit, maxLength below a prompt', async () => {
    const long = Array.from({ length: 17 }, (_, i) => i);
    await expectError([long], { maxNewTokens: 1 }, /17 positions, more than the model's maxPositionEmbeddings \(16\)/);
    const ten = Array.from({ length: 10 }, (_, i) => i);
    await expectError([[1], ten], { maxNewTokens: 8 }, /prompt of 10 positions plus 8 new tokens needs 17 positions.*at most 7/);
    // The boundary itself works: 10 + 7 - 1 = 16 positions.
    expect((await generate(model, [[1], ten], { maxNewTokens: 7 })).lengths).toEqual([7, 7]);
    await expectError([[1, 2]], {}, /set maxNewTokens .* or maxLength/);
    await expectError([[1, 2]], { maxNewTokens: 0 }, /maxNewTokens must be an integer >= 1, got 0/);
    await expectError([[1, 2, 3], [1]], { maxLength: 3 }, /prompt 0 already has 3 tokens, so maxLength 3 leaves no room/);
  });

  it('ids: out of vocabulary, negative, fractional; EOS, pad, stop sequences and suppressed ids too', async () => {
    await expectError([[1, 64]], { maxNewTokens: 2 }, /prompt 0 has token id 64 at position 1, outside the model's vocabulary \[0, 64\)/);
    await expectError([[3], [-1, 2]], { maxNewTokens: 2 }, /prompt 1 has token id -1 at position 0/);
    await expectError([[1.5]], { maxNewTokens: 2 }, /token id 1.5/);
    const tensor = tf.tensor2d([[1, 99]], undefined, 'int32');
    await expectError(tensor, { maxNewTokens: 2 }, /token id 99/);
    tensor.dispose();
    await expectError([[1]], { maxNewTokens: 2, eosTokenId: 70 }, /eosTokenId 70 is outside the vocabulary/);
    await expectError([[1]], { maxNewTokens: 2, padTokenId: -2 }, /padTokenId -2 is outside/);
    await expectError([[1]], { maxNewTokens: 2, stopSequences: [[1, 80]] }, /stop sequence 0 holds id 80/);
    await expectError([[1]], { maxNewTokens: 2, stopSequences: [[]] }, /stop sequence 0 is empty/);
    await expectError([[1]], { maxNewTokens: 2, stopSequences: ['\n'] }, /pass a tokenizer with encode/);
    await expectError([[1]], { maxNewTokens: 2, suppressTokens: [64] }, /suppressTokens holds id 64/);
  });

  it('empty prompts, padding that is not on the left, malformed tensors and embeddings', async () => {
    await expectError([], { maxNewTokens: 2 }, /got no prompts/);
    await expectError([[1, 2], []], { maxNewTokens: 2 }, /prompt 1 is empty/);
    await expectError([1, 2] as unknown as number[][], { maxNewTokens: 2 }, /wrap it: \[\[\.\.\.ids\]\]/);
    const ids = tf.tensor2d([[1, 2, 3], [4, 5, 6]], undefined, 'int32');
    const allPadding = tf.tensor2d([[1, 1, 1], [0, 0, 0]], undefined, 'int32');
    await expectError(ids, { maxNewTokens: 2, paddingMask: allPadding }, /prompt 1 is empty \(its paddingMask row is all 0\)/);
    const rightPadded = tf.tensor2d([[1, 1, 1], [1, 1, 0]], undefined, 'int32');
    await expectError(ids, { maxNewTokens: 2, paddingMask: rightPadded }, /prompt 1 is not left-padded/);
    const wrongMask = tf.ones([2, 2], 'int32');
    await expectError(ids, { maxNewTokens: 2, paddingMask: wrongMask }, /paddingMask must be \[2, 3\]/);
    const floats = tf.tensor2d([[1, 2]]);
    await expectError(floats, { maxNewTokens: 2 }, /must be int32 token ids \[B, T\], got float32/);
    const narrow = tf.zeros([1, 3, 16]);
    await expectError({ inputsEmbeds: narrow }, { maxNewTokens: 2 }, /inputsEmbeds must be float32 \[B, T, 32\]/);
    await expectError([[1, 2]], { maxNewTokens: 2, paddingMask: wrongMask }, /token-id rows are padded for you/);
    const positions = tf.tensor2d([[0, 1]], undefined, 'int32');
    await expectError([[1, 2, 3]], { maxNewTokens: 2, positions }, /positions must be int32 \[1, 3\]/);
    tf.dispose([ids, allPadding, rightPadded, wrongMask, floats, narrow, positions]);
  });

  it('sampling options: seed with rng, bad temperature / topP / topK', async () => {
    await expectError([[1]], { maxNewTokens: 2, seed: 1, rng: new Rng(1) }, /give seed or rng, not both/);
    await expectError([[1]], { maxNewTokens: 2, temperature: 0 }, /temperature 0 cannot sample .*for greedy \(argmax\) decoding pass doSample: false/);
    await expectError([[1]], { maxNewTokens: 2, temperature: -1 }, /temperature must be a finite number > 0 .*got -1; for greedy \(argmax\) decoding pass doSample: false/);
    // What the message advises works: greedy ignores the temperature.
    const greedy = await generate(model, [[1, 2]], { maxNewTokens: 3 });
    expect((await generate(model, [[1, 2]], { maxNewTokens: 3, temperature: 0, doSample: false })).tokens).toEqual(greedy.tokens);
    await expectError([[1]], { maxNewTokens: 2, topP: 1.5 }, /topP must be in \(0, 1\]/);
    await expectError([[1]], { maxNewTokens: 2, topK: 0 }, /topK must be an integer >= 1/);
  });

  it('a disposed model is named as such, before any work', async () => {
    const disposed = new CausalLM(tinyLlama());
    disposed.dispose();
    const before = tf.memory().numTensors;
    const message = /generate: the model has been disposed \(model\.dispose\(\) freed its weights\).*build or load a new model/;
    expect(() => streamGenerate(disposed, [[1, 2]], { maxNewTokens: 2 })).toThrow(message);
    await expect(generate(disposed, [[1, 2]], { maxNewTokens: 2 })).rejects.toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a wrong attention bias or token modality shape fails at the prefill and still leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const bias = tf.zeros([1, 1, 2, 2]);
    await expect(generate(model, [[1, 2, 3]], { maxNewTokens: 2, attentionBias: bias })).rejects.toThrow(/attentionBias must be/);
    const modality = tf.zeros([1, 2], 'int32');
    await expect(generate(model, [[1, 2, 3]], { maxNewTokens: 2, tokenModality: modality })).rejects.toThrow(/tokenModality must be int32 \[1, 3\]/);
    tf.dispose([bias, modality]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('generate: non-finite logits say where they came from (step, row, model or processor)', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  /** The message of the rejection, after checking that nothing leaked. */
  async function failure(model: CausalLM, prompts: number[][], options: GenerateOptions): Promise<string> {
    const before = tf.memory().numTensors;
    const message = await generate(model, prompts, options).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(tf.memory().numTensors).toBe(before);
    return message;
  }

  it('NaN weights: the model is blamed, not guidance or the sampler', async () => {
    const model = new CausalLM(tinyLlama());
    const head = model.namedParameters().find(([name]) => name === 'model.norm.weight')![1];
    tf.tidy(() => head.assign(tf.fill(head.shape, NaN)));
    for (const options of [{ maxNewTokens: 2 }, { maxNewTokens: 2, temperature: 0.7, seed: 1 }]) {
      const message = await failure(model, [[1, 2, 3]], options);
      expect(message).toMatch(/^generate: step 0, row 0: the model's logits are NaN at token id 0, before any logits processor ran/);
      expect(message).toMatch(/weights hold NaN or Inf .*diverged training run.*float16/);
      expect(message).not.toMatch(/guidance/);
    }
    model.dispose();
  });

  it("a processor's NaN names the processor, the step and the row", async () => {
    const model = new CausalLM(tinyLlama());
    let calls = 0;
    // Finite logits until the third step, then NaN in row 1 only.
    const breaksLater = {
      process: (logits: tf.Tensor2D) =>
        tf.tidy(() => {
          if (calls++ < 2) return tf.clone(logits);
          return tf.add(logits, tf.tensor2d([[0], [NaN]])) as tf.Tensor2D;
        }),
    };
    const message = await failure(model, [[1, 2], [3, 4]], { maxNewTokens: 5, logitsProcessors: [breaksLater] });
    expect(message).toMatch(/^generate: step 2, row 1: the model's logits are finite, but your logitsProcessors\[0\] turned them into NaN at token id 0; check what that processor computes/);
    expect(message).not.toMatch(/guidance/);
    const tiny = await failure(model, [[1, 2]], { maxNewTokens: 2, temperature: 1e-45, seed: 3 });
    expect(tiny).toMatch(/step 0, row 0: .*the built-in TemperatureProcessor turned them into Infinity .*temperature 1e-45 is too small .*doSample: false/);
    model.dispose();
  });
});
