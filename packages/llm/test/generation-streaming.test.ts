import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaks } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { generate } from '../src/generation/generate';
import { streamGenerate } from '../src/generation/streaming';
import type { GenerationStep } from '../src/generation/options';
import { ByteTokenizer } from '../src/tokenizers/byte-tokenizer';
import { allowedTokenRange } from '@chimera/core';
import { promptsOfLengths, sharpModel } from './generation-helpers';

/** A processor that passes logits through and throws on the given step (0-based). */
function throwingProcessor(onStep: number) {
  let step = 0;
  return {
    process(logits: tf.Tensor2D): tf.Tensor2D {
      if (step++ === onStep) throw new Error(`processor failed on step ${onStep}`);
      return tf.clone(logits);
    },
  };
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('the stream yields the same tokens as the non-streaming call, and onToken sees every step', async () => {
    const model = sharpModel(tinyLlama(), 61);
    const prompts = promptsOfLengths([3, 7, 1], 64, 12);
    const options = { maxNewTokens: 9, temperature: 1.3, topK: 20, seed: 5 };
    const full = (await generate(model, prompts, options)).tokens;
    const options2 = { ...options, eosTokenId: full[1]![2]! }; // one row stops early
    const expected = await generate(model, prompts, options2);
    expect(expected.finishReasons[1]).toBe('stop');
    const viaCallback: GenerationStep[] = [];
    const withCallback = await generate(model, prompts, { ...options2, onToken: (step) => void viaCallback.push(step) });
    expect(withCallback).toEqual(expected);

    const streamed: GenerationStep[] = [];
    const stream = streamGenerate(model, prompts, options2);
    let next = await stream.next();
    while (!next.done) {
      streamed.push(next.value);
      next = await stream.next();
    }
    expect(next.value).toEqual(expected); // the generator's return value is the result
    expect(streamed).toEqual(viaCallback);
    expect(streamed).toHaveLength(expected.steps);
    const columns = prompts.map((_, b) => streamed.map((step) => step.tokens[b]));
    expect(columns).toEqual(expected.paddedTokens);
    model.dispose();
  });

  it('with a tokenizer, each step carries its text delta and the result its text', async () => {
    const tokenizer = new ByteTokenizer();
    const model = sharpModel(tinyLlama({ vocabSize: tokenizer.vocabSize }), 63);
    const prompts = [tokenizer.encode('Hello'), tokenizer.encode('ab')];
    const printable = allowedTokenRange(0x20, 0x7f);
    const deltas = ['', ''];
    const result = await generate(model, prompts, {
      maxNewTokens: 8,
      allowTokens: printable,
      tokenizer,
      onToken: (step) => step.text!.forEach((t, b) => (deltas[b] += t)),
    });
    expect(result.text).toEqual(result.tokens.map((row) => String.fromCharCode(...row)));
    expect(deltas).toEqual(result.text);
    model.dispose();
  });

  it('frees everything: normal end, a processor throwing on step 3, onToken throwing on step 3, an early break', async () => {
    const model = sharpModel(tinyLlama(), 65);
    const prompts = promptsOfLengths([4, 2], 64, 13);
    await expectNoLeaks(() => generate(model, prompts, { maxNewTokens: 6 }), 'normal end');
    await expectNoLeaks(() => generate(model, prompts, { maxNewTokens: 6, useCache: false }), 'normal end without cache');

    for (const useCache of [true, false]) {
      const before = tf.memory().numTensors;
      await expect(generate(model, prompts, { maxNewTokens: 6, useCache, logitsProcessors: [throwingProcessor(3)] })).rejects.toThrow(
        'processor failed on step 3',
      );
      expect(tf.memory().numTensors, `processor throw (useCache ${useCache})`).toBe(before);

      let calls = 0;
      const onToken = (step: GenerationStep) => {
        calls++;
        if (step.step === 3) throw new Error('callback failed on step 3');
      };
      await expect(generate(model, prompts, { maxNewTokens: 6, useCache, onToken })).rejects.toThrow('callback failed on step 3');
      expect(calls).toBe(4);
      expect(tf.memory().numTensors, `callback throw (useCache ${useCache})`).toBe(before);

      const seen: number[] = [];
      for await (const step of streamGenerate(model, prompts, { maxNewTokens: 6, useCache })) {
        seen.push(step.step);
        if (step.step === 2) break;
      }
      expect(seen).toEqual([0, 1, 2]);
      expect(tf.memory().numTensors, `early break (useCache ${useCache})`).toBe(before);

      // A stream that is made but never iterated has made nothing.
      const unused = streamGenerate(model, prompts, { maxNewTokens: 6, useCache });
      expect(tf.memory().numTensors).toBe(before);
      await unused.return(undefined as never);
    }
    model.dispose();
  });
});
