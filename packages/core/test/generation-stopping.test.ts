import { describe, expect, it } from 'vitest';
import {
  FinishedRows,
  MaxLengthCriterion,
  MaxNewTokensCriterion,
  StopSequencesCriterion,
  StopTokensCriterion,
  buildStoppingCriteria,
  stopWhenAny,
  type StoppingCriterion,
} from '../src/generation/stopping';

// Stop criteria are plain JS (no tensors), so one run covers every backend.
describe('stop criteria', () => {
  it('max new tokens counts only tokens past each row’s prompt', () => {
    const c = new MaxNewTokensCriterion(2);
    expect(c.isDone({ tokens: [[1, 2, 3], [1, 2, 3, 4]], promptLengths: 2 })).toEqual([false, true]);
    expect(c.isDone({ tokens: [[1, 2, 3], [1, 2, 3, 4]], promptLengths: [1, 3] })).toEqual([true, false]);
    expect(() => c.isDone({ tokens: [[1], [2]], promptLengths: [1] })).toThrow(/no prompt length for row 1/);
  });

  it('max length counts the whole row', () => {
    expect(new MaxLengthCriterion(3).isDone({ tokens: [[1, 2], [1, 2, 3], [1, 2, 3, 4]], promptLengths: 1 })).toEqual([
      false,
      true,
      true,
    ]);
  });

  it('stop tokens fire per row on generated tokens only', () => {
    const eos = new StopTokensCriterion([0, 9]);
    const state = { tokens: [[5, 0], [5, 6, 9], [5, 6, 7], [0]], promptLengths: [1, 1, 1, 1] };
    // Row 3's prompt ends in a stop token but nothing was generated yet.
    expect(eos.isDone(state)).toEqual([true, true, false, false]);
  });

  it('stop sequences match a token-id suffix, possibly starting in the prompt', () => {
    const stop = new StopSequencesCriterion([[7, 7], [1, 2, 3]]);
    const state = {
      tokens: [
        [4, 7, 7], // suffix [7, 7]
        [4, 7], // prompt ends in 7, nothing generated
        [4, 7, 7, 5], // [7, 7] not at the end
        [1, 2, 3], // whole row is the sequence, last token generated
        [1, 3, 2],
      ],
      promptLengths: [1, 2, 1, 2, 1],
    };
    expect(stop.isDone(state)).toEqual([true, false, false, true, false]);
    expect(new StopSequencesCriterion([[7, 7]]).isDone({ tokens: [[3, 7, 7]], promptLengths: 2 })).toEqual([true]);
  });

  it('the any-of combinator stops a row when one criterion does', () => {
    const any = stopWhenAny(new MaxNewTokensCriterion(3), new StopTokensCriterion([0]));
    expect(any.isDone({ tokens: [[1, 0], [1, 5, 5, 5], [1, 5]], promptLengths: 1 })).toEqual([true, true, false]);
    const built = buildStoppingCriteria({ maxLength: 4, stopTokenIds: [0], stopSequences: [[8, 8]] });
    expect(built.isDone({ tokens: [[1, 2, 3, 4], [1, 0], [1, 8, 8], [1, 8]], promptLengths: 1 })).toEqual([true, true, true, false]);
    expect(() => buildStoppingCriteria({ stopTokenIds: [0] })).toThrow(/set maxNewTokens or maxLength/);
    const broken: StoppingCriterion = { isDone: () => [true] };
    expect(() => stopWhenAny(broken).isDone({ tokens: [[1], [2]], promptLengths: 0 })).toThrow(/answered for 1 rows, expected 2/);
  });

  it('finished rows keep emitting pad while the others run (a decoding loop)', () => {
    const pad = 0;
    const eos = 2;
    // Token streams the "model" would emit per row if nothing stopped it.
    const streams = [
      [5, 2, 5, 5, 5, 5], // stops on EOS at step 2
      [6, 6, 6, 6, 2, 6], // stops on EOS at step 5
      [7, 7, 7, 7, 7, 7], // stops by max new tokens (5)
    ];
    const rows = streams.map(() => [1, 1]);
    const criteria = buildStoppingCriteria({ maxNewTokens: 5, stopTokenIds: [eos] });
    const finished = new FinishedRows(3);
    let steps = 0;
    while (!finished.allFinished) {
      const next = finished.padFinished(streams.map((s) => s[steps]!), pad);
      rows.forEach((row, b) => row.push(next[b]!));
      finished.update(criteria.isDone({ tokens: rows, promptLengths: 2 }));
      steps++;
    }
    expect(steps).toBe(5);
    expect(rows).toEqual([
      [1, 1, 5, 2, pad, pad, pad],
      [1, 1, 6, 6, 6, 6, 2],
      [1, 1, 7, 7, 7, 7, 7],
    ]);
    expect(finished.generatedWhenFinished).toEqual([2, 5, 5]);
    expect(finished.finished).toEqual([true, true, true]);
    // Sticky: a later "not done" verdict never revives a row.
    finished.update([false, false, false]);
    expect(finished.finished).toEqual([true, true, true]);
    expect(() => finished.padFinished([1, 2], pad)).toThrow(/one entry per row \(3\), got 2/);
  });

  it('rejects nonsense limits', () => {
    expect(() => new MaxNewTokensCriterion(0)).toThrow(/integer maxNewTokens >= 1, got 0/);
    expect(() => new StopTokensCriterion([])).toThrow(/at least one stop token id/);
    expect(() => new StopSequencesCriterion([[]])).toThrow(/non-empty/);
  });
});
