import { describe, it, expect, beforeAll } from 'vitest';
import { manualSeed } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend, Rng } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { generate } from '../src/generation/generate';
import { promptsOfLengths, referenceGreedy, sharpModel } from './generation-helpers';
import { referenceLogits } from './model-helpers';

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('seeded sampling repeats; another seed gives other tokens; seed n equals rng new Rng(n); manualSeed drives the default', async () => {
    const model = sharpModel(tinyLlama(), 31);
    const prompts = promptsOfLengths([4, 2, 6], 64, 1);
    const options = { maxNewTokens: 12, temperature: 1.5, topP: 0.95, topK: 40, minP: 0.01 };
    const first = await generate(model, prompts, { ...options, seed: 7 });
    expect((await generate(model, prompts, { ...options, seed: 7 })).tokens).toEqual(first.tokens);
    expect((await generate(model, prompts, { ...options, rng: new Rng(7) })).tokens).toEqual(first.tokens);
    expect((await generate(model, prompts, { ...options, seed: 8 })).tokens).not.toEqual(first.tokens);
    expect((await generate(model, prompts, { maxNewTokens: 12 })).tokens).not.toEqual(first.tokens); // sampling is on
    manualSeed(99);
    const fromGlobal = await generate(model, prompts, options);
    manualSeed(99);
    expect((await generate(model, prompts, options)).tokens).toEqual(fromGlobal.tokens);
    model.dispose();
  });

  it('sampled tokens are inverse-CDF draws from the float64 reference distribution, one rng draw per row and step', async () => {
    const model = sharpModel(tinyLlama(), 41);
    const prompt = promptsOfLengths([5], 64, 2)[0]!;
    const temperature = 2; // flat enough that the draws land on many different tokens
    const { tokens } = await generate(model, [prompt], { maxNewTokens: 8, temperature, seed: 123 });
    const rng = new Rng(123);
    const sequence = [...prompt];
    const expected: number[] = [];
    for (let s = 0; s < 8; s++) {
      const logits = referenceLogits(model, [sequence])[0]!.at(-1)!.map((v) => v / temperature);
      const max = Math.max(...logits);
      const weights = logits.map((v) => Math.exp(v - max));
      const threshold = rng.next() * weights.reduce((a, w) => a + w, 0);
      let cumulative = 0;
      const next = weights.findIndex((w) => (cumulative += w) > threshold);
      expected.push(next);
      sequence.push(next);
    }
    expect(tokens[0]).toEqual(expected);
    expect(new Set(expected).size).toBeGreaterThan(3);
    model.dispose();
  });

  it('topK 1 or a tiny temperature sample the greedy tokens; doSample false ignores temperature', async () => {
    const model = sharpModel(tinyLlama(), 43);
    const prompts = promptsOfLengths([3, 5], 64, 5);
    const greedy = (await generate(model, prompts, { maxNewTokens: 8 })).tokens;
    expect((await generate(model, prompts, { maxNewTokens: 8, topK: 1, temperature: 3, seed: 1 })).tokens).toEqual(greedy);
    expect((await generate(model, prompts, { maxNewTokens: 8, temperature: 1e-4, seed: 2 })).tokens).toEqual(greedy);
    expect((await generate(model, prompts, { maxNewTokens: 8, temperature: 5, doSample: false })).tokens).toEqual(greedy);
    model.dispose();
  });

  it('suppressTokens and allowTokens constrain the output; the repetition penalty matches a reference decode', async () => {
    const model = sharpModel(tinyLlama(), 47);
    const prompts = promptsOfLengths([4, 3], 64, 6);
    const greedy = (await generate(model, prompts, { maxNewTokens: 8 })).tokens;
    const banned = [...new Set(greedy.flat())];
    const suppressed = (await generate(model, prompts, { maxNewTokens: 8, suppressTokens: banned })).tokens;
    expect(suppressed.flat().some((t) => banned.includes(t))).toBe(false);
    const allowed = [3, 17, 29, 40, 41];
    const restricted = (await generate(model, prompts, { maxNewTokens: 8, allowTokens: allowed, temperature: 2, seed: 4 })).tokens;
    expect(restricted.flat().every((t) => allowed.includes(t))).toBe(true);

    // HF's CTRL penalty on every id already in the row (prompt included), then argmax, in float64.
    const penalty = 1.8;
    const penalised = (await generate(model, prompts, { maxNewTokens: 8, repetitionPenalty: penalty })).tokens;
    prompts.forEach((prompt, b) => {
      const sequence = [...prompt];
      for (let s = 0; s < 8; s++) {
        const logits = referenceLogits(model, [sequence])[0]!.at(-1)!;
        const seen = new Set(sequence);
        const adjusted = logits.map((v, id) => (seen.has(id) ? (v < 0 ? v * penalty : v / penalty) : v));
        sequence.push(adjusted.indexOf(Math.max(...adjusted)));
      }
      expect(penalised[b], `row ${b}`).toEqual(sequence.slice(prompt.length));
    });
    expect(penalised).not.toEqual(greedy);
    expect(greedy[0]).toEqual(referenceGreedy(model, prompts[0]!, 8));
    model.dispose();
  });
});
