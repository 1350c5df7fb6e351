import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  AllowTokensProcessor,
  LogitsProcessorList,
  MinPProcessor,
  RepetitionPenaltyProcessor,
  SuppressTokensProcessor,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  allowedTokenRange,
  buildLogitsProcessors,
  type LogitsProcessor,
} from '../src/generation/logits-processors';
import { classifierFreeGuidance, classifierFreeGuidanceFromBatch } from '../src/generation/guidance';
import { Rng } from '../src/runtime/random';
import { TEST_BACKENDS, expectNoLeaksSync, setupTestBackend } from '../src/testing';

// ---- plain-JS oracles (float64, written from the definitions, not from the tensor code) ----

type Rows = number[][];

function randomLogits(rng: Rng, batch: number, vocab: number, spread = 2): Rows {
  return Array.from({ length: batch }, () => Array.from({ length: vocab }, () => spread * rng.normal()));
}

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function oracleTopK(row: number[], k: number): number[] {
  const kth = [...row].sort((a, b) => b - a)[Math.min(k, row.length) - 1]!;
  return row.map((v) => (v >= kth ? v : -Infinity));
}

/** The smallest set of most likely tokens whose probability mass reaches p. */
function nucleus(row: number[], p: number, minKeep = 1): Set<number> {
  const probs = softmax(row);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
  const kept = new Set<number>();
  let mass = 0;
  for (const i of order) {
    if (mass >= p && kept.size >= minKeep) break;
    kept.add(i);
    mass += probs[i]!;
  }
  return kept;
}

function oracleTopP(row: number[], p: number, minKeep = 1): number[] {
  const kept = nucleus(row, p, minKeep);
  return row.map((v, i) => (kept.has(i) ? v : -Infinity));
}

function oracleMinP(row: number[], minP: number): number[] {
  const probs = softmax(row);
  const top = Math.max(...probs);
  return row.map((v, i) => (probs[i]! >= minP * top ? v : -Infinity));
}

function oracleRepetition(row: number[], seen: number[], penalty: number): number[] {
  const out = [...row];
  for (const id of new Set(seen)) out[id] = row[id]! < 0 ? row[id]! * penalty : row[id]! / penalty;
  return out;
}

function run(processor: LogitsProcessor, logits: Rows, tokens?: number[][]): Rows {
  return tf.tidy(() => {
    const out = processor.process(tf.tensor2d(logits), tokens);
    return out.arraySync() as Rows;
  });
}

function expectRowsClose(actual: Rows, expected: Rows, digits = 5): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, b) =>
    row.forEach((v, i) => {
      const e = expected[b]![i]!;
      if (e === -Infinity) expect(v, `row ${b} id ${i} should be masked`).toBe(-Infinity);
      else expect(v, `row ${b} id ${i}`).toBeCloseTo(e, digits);
    }),
  );
}

const keptIds = (row: number[]): number[] => row.flatMap((v, i) => (v === -Infinity ? [] : [i]));

describe.each(TEST_BACKENDS)('logits processors on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('temperature divides by T', () => {
    const logits = randomLogits(new Rng(1), 4, 30);
    for (const t of [0.3, 1, 2.5]) {
      expectRowsClose(run(new TemperatureProcessor(t), logits), logits.map((r) => r.map((v) => v / t)));
    }
    expect(() => new TemperatureProcessor(0)).toThrow(/temperature > 0.*greedyTokens/);
  });

  it('top-k keeps exactly the k best per row (random logits)', () => {
    const logits = randomLogits(new Rng(2), 6, 50);
    for (const k of [1, 3, 17, 50, 80]) {
      const out = run(new TopKProcessor(k), logits);
      expectRowsClose(out, logits.map((r) => oracleTopK(r, k)), 6);
      out.forEach((row) => expect(keptIds(row).length).toBe(Math.min(k, 50)));
    }
  });

  it('top-p keeps the smallest prefix whose mass reaches p (hand-worked)', () => {
    const probs = [0.1, 0.4, 0.2, 0.3];
    const logits = [probs.map(Math.log)];
    const kept = (p: number, minKeep = 1) => keptIds(run(new TopPProcessor(p, minKeep), logits)[0]!);
    expect(kept(0.3)).toEqual([1]);
    expect(kept(0.4)).toEqual([1]); // the first token alone reaches p exactly
    expect(kept(0.65)).toEqual([1, 3]);
    expect(kept(0.7)).toEqual([1, 3]); // 0.4 + 0.3 reaches 0.7 exactly
    expect(kept(0.71)).toEqual([1, 2, 3]);
    expect(kept(0.95)).toEqual([0, 1, 2, 3]);
    expect(kept(1)).toEqual([0, 1, 2, 3]);
    expect(kept(0.3, 3)).toEqual([1, 2, 3]); // minTokensToKeep floor
    expect(kept(1e-9)).toEqual([1]); // always at least one token
    // Prefixes that reach p exactly but whose float32 sums land just below it (on cpu, resp. wasm).
    const keptFor = (probs: number[], p: number) => keptIds(run(new TopPProcessor(p), [probs.map(Math.log)])[0]!);
    expect(keptFor([0.5, 0.3, 0.2], 0.8)).toEqual([0, 1]);
    expect(keptFor([0.6, 0.3, 0.1], 0.6)).toEqual([0]);
  });

  it('top-p matches the nucleus oracle on random logits', () => {
    const rng = new Rng(3);
    const logits = randomLogits(rng, 8, 40);
    for (const p of [0.05, 0.5, 0.9, 0.99]) {
      expectRowsClose(run(new TopPProcessor(p), logits), logits.map((r) => oracleTopP(r, p)), 6);
    }
    expectRowsClose(run(new TopPProcessor(0.5, 5), logits), logits.map((r) => oracleTopP(r, 0.5, 5)), 6);
  });

  it('min-p keeps tokens with probability >= minP * top probability', () => {
    const logits = randomLogits(new Rng(4), 6, 40);
    for (const m of [0.01, 0.1, 0.5, 1]) {
      expectRowsClose(run(new MinPProcessor(m), logits), logits.map((r) => oracleMinP(r, m)), 6);
    }
  });

  it('repetition penalty: positive seen logits divided, negative multiplied, each id once (hand-worked)', () => {
    const logits = [[2, -1, 0.5, -3, 4]];
    const out = run(new RepetitionPenaltyProcessor(2), logits, [[0, 1, 1, 1, 3]]);
    expectRowsClose(out, [[1, -2, 0.5, -6, 4]], 6);
    // penalty < 1 encourages repeats, with the same rule
    expectRowsClose(run(new RepetitionPenaltyProcessor(0.5), logits, [[4, 1]]), [[2, -0.5, 0.5, -3, 8]], 6);
  });

  it('repetition penalty matches the HF-semantics oracle on random logits and histories', () => {
    const rng = new Rng(5);
    const logits = randomLogits(rng, 5, 30);
    const tokens = logits.map((_, b) => Array.from({ length: 3 + 4 * b }, () => rng.nextInt(30)));
    expectRowsClose(
      run(new RepetitionPenaltyProcessor(1.3), logits, tokens),
      logits.map((r, b) => oracleRepetition(r, tokens[b]!, 1.3)),
    );
    expect(() => run(new RepetitionPenaltyProcessor(1.3), logits, tokens.slice(1))).toThrow(/tokens of each of the 5 logits rows/);
    expect(() => run(new RepetitionPenaltyProcessor(1.3), [[1, 2]], [[2]])).toThrow(/outside the vocabulary \[0, 2\)/);
  });

  it('suppress and allow lists', () => {
    const logits = [
      [1, 2, 3, 4, 5, 6],
      [6, 5, 4, 3, 2, 1],
    ];
    expect(run(new SuppressTokensProcessor([0, 4]), logits)).toEqual([
      [-Infinity, 2, 3, 4, -Infinity, 6],
      [-Infinity, 5, 4, 3, -Infinity, 1],
    ]);
    expect(run(new AllowTokensProcessor(allowedTokenRange(2, 4)), logits)).toEqual([
      [-Infinity, -Infinity, 3, 4, -Infinity, -Infinity],
      [-Infinity, -Infinity, 4, 3, -Infinity, -Infinity],
    ]);
    expect(() => run(new AllowTokensProcessor([6]), logits)).toThrow(/token id 6 is outside the vocabulary \[0, 6\)/);
  });

  it('a list applies its processors in order; buildLogitsProcessors uses HF order', () => {
    const rng = new Rng(6);
    const logits = randomLogits(rng, 4, 25);
    const tokens = logits.map(() => [rng.nextInt(25), rng.nextInt(25)]);
    // Temperature before top-p changes the nucleus, so order is observable.
    const expected = logits.map((r, b) =>
      oracleMinP(oracleTopP(oracleTopK(oracleRepetition(r, tokens[b]!, 1.2).map((v) => v / 0.7), 12), 0.8), 0.05),
    );
    const built = buildLogitsProcessors({ repetitionPenalty: 1.2, temperature: 0.7, topK: 12, topP: 0.8, minP: 0.05 });
    expect(built.processors.map((p) => p.constructor.name)).toEqual([
      'RepetitionPenaltyProcessor',
      'TemperatureProcessor',
      'TopKProcessor',
      'TopPProcessor',
      'MinPProcessor',
    ]);
    expectRowsClose(run(built, logits, tokens), expected);
    expect(buildLogitsProcessors({ temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1 }).processors).toHaveLength(0);
    // Out-of-range settings are errors, not silently ignored.
    expect(() => buildLogitsProcessors({ topP: 1.5 })).toThrow(/0 < p <= 1/);
    expect(() => buildLogitsProcessors({ topK: -3 })).toThrow(/k >= 1/);
    // An empty list gives back an equal copy the caller owns.
    expect(run(new LogitsProcessorList([]), logits)).toEqual(tf.tidy(() => tf.tensor2d(logits).arraySync()));
  });

  it('rejects logits that are not [batch, vocab]', () => {
    expect(() => tf.tidy(() => new TopKProcessor(2).process(tf.zeros([1, 2, 3]) as unknown as tf.Tensor2D))).toThrow(
      /expected logits of shape \[batch, vocab\], got \[1,2,3\]/,
    );
  });

  it('classifier-free guidance: uncond + scale * (cond - uncond), two-tensor, halves and interleaved forms', () => {
    const rng = new Rng(7);
    const cond = randomLogits(rng, 3, 12);
    const uncond = randomLogits(rng, 3, 12);
    const scale = 4.5;
    const expected = cond.map((r, b) => r.map((c, i) => uncond[b]![i]! + scale * (c - uncond[b]![i]!)));
    const [two, halves, interleaved, unit] = tf.tidy(() => {
      const c = tf.tensor2d(cond);
      const u = tf.tensor2d(uncond);
      const pairs = cond.flatMap((r, b) => [r, uncond[b]!]);
      return [
        classifierFreeGuidance(c, u, scale).arraySync() as Rows,
        classifierFreeGuidanceFromBatch(tf.concat([c, u], 0) as tf.Tensor2D, scale).arraySync() as Rows,
        classifierFreeGuidanceFromBatch(tf.tensor2d(pairs), scale, 'interleaved').arraySync() as Rows,
        classifierFreeGuidance(c, u, 1).arraySync() as Rows,
      ];
    });
    expectRowsClose(two!, expected, 4);
    expectRowsClose(halves!, expected, 4);
    expectRowsClose(interleaved!, expected, 4);
    expectRowsClose(unit!, cond, 5);
    expect(() => tf.tidy(() => classifierFreeGuidanceFromBatch(tf.zeros([3, 4]) as tf.Tensor2D, 2))).toThrow(/even number of rows/);
    expect(() => tf.tidy(() => classifierFreeGuidance(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([2, 5]) as tf.Tensor2D, 2))).toThrow(
      /same shape, got \[2,4\] and \[2,5\]/,
    );
  });

  it('classifier-free guidance after a filter is refused, naming the row and token (the mix would be NaN)', () => {
    const before = tf.memory().numTensors;
    const filtered = () =>
      tf.tidy(() => {
        const logits = tf.tensor2d([[1, 2, 3, 4], [4, 3, 2, 1]]);
        return classifierFreeGuidance(logits, new TopKProcessor(2).process(logits), 3);
      });
    expect(filtered).toThrow(
      /the unconditional logits are -Infinity at row 0, token id 0, as a filter \(top-k.*-Infinity - -Infinity is NaN\. Apply guidance to the raw logits, before any filter/,
    );
    const halves = tf.tensor2d([[1, -Infinity], [0, 1]]);
    expect(() => tf.tidy(() => classifierFreeGuidanceFromBatch(halves, 2))).toThrow(/the conditional logits are -Infinity at row 0, token id 1/);
    halves.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaves no tensors behind', () => {
    const logits = tf.tensor2d(randomLogits(new Rng(8), 4, 20));
    const tokens = [[1, 2], [3], [4, 4, 5], []];
    const processors: LogitsProcessor[] = [
      new TemperatureProcessor(0.5),
      new TemperatureProcessor(1),
      new TopKProcessor(5),
      new TopKProcessor(50),
      new TopPProcessor(0.7),
      new TopPProcessor(0.7, 3),
      new TopPProcessor(1),
      new MinPProcessor(0.1),
      new RepetitionPenaltyProcessor(1.5),
      new SuppressTokensProcessor([1]),
      new AllowTokensProcessor([1, 2, 3]),
      buildLogitsProcessors({ repetitionPenalty: 1.1, temperature: 0.9, topK: 8, topP: 0.9, minP: 0.02 }),
      new LogitsProcessorList([]),
    ];
    for (const p of processors) {
      expectNoLeaksSync(() => p.process(logits, tokens).dispose(), p.constructor.name);
    }
    const doubled = tf.concat([logits, logits], 0) as tf.Tensor2D;
    expectNoLeaksSync(() => classifierFreeGuidance(logits, logits, 3).dispose(), 'cfg');
    expectNoLeaksSync(() => classifierFreeGuidanceFromBatch(doubled, 3).dispose(), 'cfg halves');
    expectNoLeaksSync(() => classifierFreeGuidanceFromBatch(doubled, 3, 'interleaved').dispose(), 'cfg interleaved');
    // The input survives: processors never dispose what they are given.
    expect(logits.isDisposed).toBe(false);
    tf.dispose([logits, doubled]);
  });
});
