import { describe, it, expect, beforeAll } from 'vitest';
import { TEST_BACKENDS, setupTestBackend } from '@chimera/core/testing';
import { tinyLlama } from '../src/config';
import { generate } from '../src/generation/generate';
import { streamGenerate } from '../src/generation/streaming';
import { promptsOfLengths, sharpModel } from './generation-helpers';

const MAX = 10;

/** Where a row of `full` (the unstopped greedy run) must end: the first generated index completing a stop. */
function expectedEnd(prompt: number[], generated: number[], stops: number[][]): number | null {
  const sequence = [...prompt, ...generated];
  for (let i = 0; i < generated.length; i++) {
    const end = prompt.length + i + 1;
    if (stops.some((s) => s.length <= end && s.every((id, k) => sequence[end - s.length + k] === id))) return i;
  }
  return null;
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('stop tokens end rows; finished rows emit padding and report their real lengths and reasons', async () => {
    const model = sharpModel(tinyLlama({ padTokenId: 0 }), 51);
    const prompts = promptsOfLengths([3, 6, 2], 64, 7, 1);
    const full = (await generate(model, prompts, { maxNewTokens: MAX })).tokens;
    // A stop token that row 0 produces mid-way, and that some row never produces.
    const eos = full[0]![3]!;
    const ends = prompts.map((p, b) => expectedEnd(p, full[b]!, [[eos]]));
    expect(ends.some((e) => e === null)).toBe(true);

    const result = await generate(model, prompts, { maxNewTokens: MAX, eosTokenId: eos });
    prompts.forEach((_, b) => {
      const end = ends[b];
      const expected = end === null ? full[b]! : full[b]!.slice(0, end + 1);
      expect(result.tokens[b], `row ${b}`).toEqual(expected);
      expect(result.lengths[b]).toBe(expected.length);
      expect(result.finishReasons[b]).toBe(end === null ? 'length' : 'stop');
      expect(result.paddedTokens[b]).toEqual([...expected, ...new Array<number>(result.steps - expected.length).fill(0)]);
    });
    expect(result.steps).toBe(Math.max(...result.lengths));
    expect(result.padTokenId).toBe(0);

    // The config's EOS is the default; null turns it off; padTokenId overrides the config's.
    const fromConfig = sharpModel(tinyLlama({ padTokenId: 0, eosTokenId: [63, eos] }), 51);
    const viaConfig = await generate(fromConfig, prompts, { maxNewTokens: MAX, padTokenId: 5 });
    expect(viaConfig.tokens).toEqual(result.tokens);
    viaConfig.paddedTokens.forEach((row, b) => {
      expect(row).toHaveLength(viaConfig.steps);
      expect(row.slice(viaConfig.lengths[b])).toEqual(new Array<number>(viaConfig.steps - viaConfig.lengths[b]!).fill(5));
    });
    expect((await generate(fromConfig, prompts, { maxNewTokens: MAX, eosTokenId: null })).tokens).toEqual(full);
    model.dispose();
    fromConfig.dispose();
  });

  it('stop sequences end a row where the sequence completes (it may start in the prompt)', async () => {
    const model = sharpModel(tinyLlama(), 53);
    const prompts = promptsOfLengths([4, 5], 64, 9, 1);
    const full = (await generate(model, prompts, { maxNewTokens: MAX })).tokens;
    const inGenerated = [full[1]![4]!, full[1]![5]!];
    const acrossPrompt = [prompts[0]!.at(-1)!, full[0]![0]!, full[0]![1]!];
    const stops = [inGenerated, acrossPrompt];
    const result = await generate(model, prompts, { maxNewTokens: MAX, stopSequences: stops });
    expect(result.tokens[0]).toEqual(full[0]!.slice(0, 2));
    prompts.forEach((p, b) => {
      const end = expectedEnd(p, full[b]!, stops);
      expect(end, `row ${b}`).not.toBeNull();
      expect(result.tokens[b]).toEqual(full[b]!.slice(0, end! + 1));
      expect(result.finishReasons[b]).toBe('stop');
    });
    model.dispose();
  });

  it('maxLength counts each row\'s real prompt; the tighter of maxLength and maxNewTokens wins per row', async () => {
    const model = sharpModel(tinyLlama(), 57);
    const prompts = promptsOfLengths([2, 5, 7], 64, 10);
    const byLength = await generate(model, prompts, { maxLength: 8 });
    expect(byLength.lengths).toEqual([6, 3, 1]);
    expect(byLength.sequences.map((s) => s.length)).toEqual([8, 8, 8]);
    expect(byLength.finishReasons).toEqual(['length', 'length', 'length']);
    const both = await generate(model, prompts, { maxLength: 8, maxNewTokens: 4 });
    expect(both.lengths).toEqual([4, 3, 1]);
    const full = (await generate(model, prompts, { maxNewTokens: 6 })).tokens;
    expect(byLength.tokens).toEqual([full[0], full[1]!.slice(0, 3), full[2]!.slice(0, 1)]);
    model.dispose();
  });

  it('streamed steps mark padding and finished rows as they happen', async () => {
    const model = sharpModel(tinyLlama({ padTokenId: 1 }), 51);
    const prompts = promptsOfLengths([3, 6], 64, 7, 1);
    const full = (await generate(model, prompts, { maxNewTokens: 6 })).tokens;
    const eos = full[0]![1]!;
    const end0 = expectedEnd(prompts[0]!, full[0]!, [[eos]])!;
    const steps = [];
    for await (const step of streamGenerate(model, prompts, { maxNewTokens: 6, eosTokenId: eos })) steps.push(step);
    steps.forEach((step, s) => {
      expect(step.step).toBe(s);
      expect(step.padded[0]).toBe(s > end0);
      expect(step.finished[0]).toBe(s >= end0);
      expect(step.finishReasons[0]).toBe(s >= end0 ? 'stop' : null);
      if (s > end0) expect(step.tokens[0]).toBe(1);
    });
    model.dispose();
  });
});
