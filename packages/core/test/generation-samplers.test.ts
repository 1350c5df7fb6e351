import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TemperatureProcessor, TopKProcessor, TopPProcessor } from '../src/generation/logits-processors';
import { argmaxPerRow, greedyTokens, greedyTokensSync, samplePerRow, sampleTokens, sampleTokensSync } from '../src/generation/samplers';
import { Rng, manualSeed } from '../src/runtime/random';
import { TEST_BACKENDS, expectNoLeaks, expectNoLeaksSync, setupTestBackend } from '../src/testing';

function randomLogits(rng: Rng, batch: number, vocab: number, spread = 2): number[][] {
  return Array.from({ length: batch }, () => Array.from({ length: vocab }, () => spread * rng.normal()));
}

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Pearson's chi-square statistic of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[], draws: number): number {
  return counts.reduce((acc, c, i) => acc + (c - draws * probs[i]!) ** 2 / (draws * probs[i]!), 0);
}

/** Indices of the k largest values. */
function topIds(row: number[], k: number): Set<number> {
  return new Set(row.map((_, i) => i).sort((a, b) => row[b]! - row[a]!).slice(0, k));
}

describe.each(TEST_BACKENDS)('samplers on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('greedy picks the argmax, ties to the lowest id', async () => {
    const rows = [
      [1, 3, 3, 2],
      [5, 5, 5, 5],
      [-Infinity, 0, 0, -1],
      [-2, -1, -3, -1],
    ];
    const logits = tf.tensor2d(rows);
    expect(greedyTokensSync(logits)).toEqual([1, 0, 1, 1]);
    expect(await greedyTokens(logits)).toEqual([1, 0, 1, 1]);
    logits.dispose();
    expect(() => argmaxPerRow([0, NaN, 1], 3)).toThrow(/row 0 is NaN at id 1/);
  });

  it('greedy agrees with an independent argmax on random logits', () => {
    const rows = randomLogits(new Rng(11), 16, 300);
    const logits = tf.tensor2d(rows);
    const expected = rows.map((r) => {
      const asFloat32 = r.map((v) => Math.fround(v));
      return asFloat32.indexOf(Math.max(...asFloat32));
    });
    expect(greedyTokensSync(logits)).toEqual(expected);
    logits.dispose();
  });

  it('temperature-scaled sampling matches softmax(logits / T) (chi-square)', () => {
    const row = [0.5, -1, 2, 0, 1.2, -0.3];
    const draws = 20000;
    // df = 5; the 0.999 quantile of chi-square(5) is 20.5.
    const critical = 20.5;
    for (const [t, seed] of [[0.6, 42], [2, 43]] as const) {
      const counts = new Array<number>(row.length).fill(0);
      const tokens = tf.tidy(() => {
        const processed = new TemperatureProcessor(t).process(tf.tensor2d(Array.from({ length: draws }, () => row)));
        return sampleTokensSync(processed, new Rng(seed));
      });
      tokens.forEach((id) => counts[id]!++);
      const tempered = softmax(row.map((v) => v / t));
      expect(chiSquare(counts, tempered, draws)).toBeLessThan(critical);
      // The same counts are far from the untempered distribution, so the check has power.
      expect(chiSquare(counts, softmax(row), draws)).toBeGreaterThan(10 * critical);
    }
  });

  it('top-k never samples outside the k best (many draws)', () => {
    const rng = new Rng(12);
    const rows = randomLogits(rng, 16, 40, 1);
    const k = 5;
    const allowed = rows.map((r) => topIds(r, k));
    const seen = rows.map(() => new Set<number>());
    const logits = tf.tensor2d(rows);
    const processed = new TopKProcessor(k).process(logits);
    for (let step = 0; step < 300; step++) {
      sampleTokensSync(processed, rng).forEach((id, b) => {
        expect(allowed[b]!.has(id), `row ${b} sampled ${id}`).toBe(true);
        seen[b]!.add(id);
      });
    }
    // It does sample from the whole top-k, not just the best token.
    seen.forEach((s) => expect(s.size).toBeGreaterThanOrEqual(3));
    tf.dispose([logits, processed]);
  });

  it('top-p never samples outside the nucleus (many draws)', () => {
    const rng = new Rng(13);
    const rows = randomLogits(rng, 8, 30, 1.5);
    const p = 0.6;
    const nucleus = rows.map((r) => {
      const probs = softmax(r);
      const order = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
      const kept = new Set<number>();
      let mass = 0;
      for (const i of order) {
        if (mass >= p) break;
        kept.add(i);
        mass += probs[i]!;
      }
      return kept;
    });
    const logits = tf.tensor2d(rows);
    const processed = new TopPProcessor(p).process(logits);
    for (let step = 0; step < 300; step++) {
      sampleTokensSync(processed, rng).forEach((id, b) => expect(nucleus[b]!.has(id), `row ${b} sampled ${id}`).toBe(true));
    }
    tf.dispose([logits, processed]);
  });

  it('the same seed gives the same tokens, different seeds differ', async () => {
    const logits = tf.tensor2d(randomLogits(new Rng(14), 32, 100, 1));
    const a = sampleTokensSync(logits, new Rng(7));
    expect(sampleTokensSync(logits, new Rng(7))).toEqual(a);
    expect(await sampleTokens(logits, new Rng(7))).toEqual(a);
    expect(sampleTokensSync(logits, new Rng(8))).not.toEqual(a);
    // The default generator follows manualSeed.
    manualSeed(99);
    const b = [sampleTokensSync(logits), sampleTokensSync(logits)];
    manualSeed(99);
    expect([sampleTokensSync(logits), sampleTokensSync(logits)]).toEqual(b);
    expect(b[0]).not.toEqual(b[1]);
    logits.dispose();
  });

  it('never samples a masked token and refuses rows with nothing to sample', () => {
    const rng = new Rng(15);
    const row = [-Infinity, 0, -Infinity, 3, -Infinity];
    for (let i = 0; i < 200; i++) expect([1, 3]).toContain(samplePerRow(row, 5, rng)[0]);
    expect(() => samplePerRow([-Infinity, -Infinity, 0, 1], 2, rng)).toThrow(/every token of row 0 has logit -Infinity/);
    expect(() => samplePerRow([0, NaN], 2, rng)).toThrow(/row 0 is NaN at id 1/);
    expect(() => samplePerRow([0, 1, 2], 2, rng)).toThrow(/whole rows of 2 logits, got 3 values/);
  });

  it('non-finite logits: the message says what is wrong and its likely causes, and does not blame guidance', () => {
    const rng = new Rng(17);
    const nan = /row 1 is NaN at id 2, so no token can be picked.*diverged or its weights hold NaN.*float16.*logits processor/;
    const messages = [
      () => argmaxPerRow([0, 1, 2, 0, 1, NaN], 3),
      () => samplePerRow([0, 1, 2, 0, 1, NaN], 3, rng),
      () => samplePerRow([0, 1, 2, 0, Infinity, 1], 3, rng),
    ].map((call) => {
      try {
        call();
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    });
    expect(messages[0]).toMatch(nan);
    expect(messages[1]).toMatch(nan);
    expect(messages[2]).toMatch(/row 1 is \+Infinity at token id 1.*overflowed.*diverged.*float16.*temperature near 0/);
    for (const message of messages) expect(message).not.toMatch(/guidance/);
  });

  it('leaves no tensors behind and disposes nothing it was given', async () => {
    const logits = tf.tensor2d(randomLogits(new Rng(16), 4, 20));
    expectNoLeaksSync(() => greedyTokensSync(logits), 'greedyTokensSync');
    expectNoLeaksSync(() => sampleTokensSync(logits, new Rng(1)), 'sampleTokensSync');
    await expectNoLeaks(() => greedyTokens(logits), 'greedyTokens');
    await expectNoLeaks(() => sampleTokens(logits, new Rng(1)), 'sampleTokens');
    expect(logits.isDisposed).toBe(false);
    logits.dispose();
  });
});
