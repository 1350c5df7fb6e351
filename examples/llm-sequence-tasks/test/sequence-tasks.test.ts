import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, initBackend } from '@chimera/core';
import { TEST_BACKENDS, setupTestBackend } from '@chimera/core/testing';
import { generate } from '@chimera/llm';
import { packBatch, packRows } from '../src/batches';
import { exactMatch, greedyAnswers, sameAnswer } from '../src/evaluate';
import { runExperiment } from '../src/experiment';
import {
  HELDOUT_SHARE,
  additionExample,
  additionTask,
  drawFrom,
  heldOutSet,
  reversalTask,
  splitOf,
  trainingBatch,
  type Example,
} from '../src/tasks';
import { EOS, PAD, decode, encode, letterToken } from '../src/vocabulary';
import { unknownFlagProblems } from '@chimera-examples/kit';

const key = (e: Example) => e.prompt.join(',');

/** Reads a least-significant-first digit string back as a number. */
const readReversed = (digits: string) => Number([...digits].reverse().join(''));

describe('tasks', () => {
  it('reversal answers are the prompt letters reversed, then EOS', () => {
    const task = reversalTask({ alphabet: 5, minLength: 2, maxLength: 6 });
    const rng = new Rng(7);
    for (let i = 0; i < 200; i++) {
      const { prompt, answer } = task.draw(rng);
      const text = decode(prompt);
      expect(text).toMatch(/^[a-e]{2,6}=$/);
      expect(decode(answer)).toBe(`${[...text.slice(0, -1)].reverse().join('')}$`);
    }
  });

  it('addition: 12 + 345 = 357 is written least-significant digit first, and random problems add up', () => {
    const example = additionExample(12, 345, 3);
    expect(decode(example.prompt)).toBe('210+543=');
    expect(decode(example.answer)).toBe('7530$');
    const task = additionTask({ digits: 3 });
    const rng = new Rng(11);
    let oneDigitOperands = 0;
    for (let i = 0; i < 600; i++) {
      // Held-out problems (draw) are uniform; training problems have a uniform digit count per operand.
      const example = i % 2 === 0 ? task.draw(rng) : task.drawForTraining!(rng);
      const [a, b] = decode(example.prompt).slice(0, -1).split('+').map(readReversed) as [number, number];
      expect(readReversed(decode(example.answer).slice(0, -1))).toBe(a + b);
      expect(decode(example.answer)).toMatch(/^[0-9]{4}\$$/);
      if (i % 2 === 1) oneDigitOperands += Number(a < 10) + Number(b < 10);
    }
    expect(Math.abs(oneDigitOperands / 600 - 1 / 3)).toBeLessThan(0.07);
  });

  it('the held-out split is about a tenth of all problems and never meets the training batches', () => {
    const task = reversalTask({ alphabet: 8, minLength: 4, maxLength: 5 });
    // Every problem of this task, enumerated: the share that the hash sends to held-out.
    let heldOutCount = 0;
    for (let length = 4; length <= 5; length++) {
      for (let n = 0; n < 8 ** length; n++) {
        const letters = Array.from({ length }, (_, i) => letterToken(Math.floor(n / 8 ** i) % 8));
        if (splitOf({ prompt: [...letters, ...encode('=')], answer: [] }) === 'heldout') heldOutCount++;
      }
    }
    expect(Math.abs(heldOutCount / task.problemCount - HELDOUT_SHARE)).toBeLessThan(0.01);

    const heldOut = heldOutSet(task, 300, 5);
    expect(new Set(heldOut.map(key)).size).toBe(300);
    const heldOutKeys = new Set(heldOut.map(key));
    let trainingProblems = 0;
    for (let step = 0; step < 250; step++) {
      for (const example of trainingBatch(task, 32, 1, step)) {
        expect(heldOutKeys.has(key(example))).toBe(false);
        expect(splitOf(example)).toBe('train');
        trainingProblems++;
      }
    }
    expect(trainingProblems).toBe(8000);
    // The same holds for addition's held-out problems against its training draws.
    const addition = additionTask();
    const additionHeldOut = new Set(heldOutSet(addition, 500, 5).map(key));
    const rng = new Rng(3);
    for (let i = 0; i < 5000; i++) expect(additionHeldOut.has(key(drawFrom(addition, 'train', rng)))).toBe(false);
  });

  it('trainingBatch is a pure function of (seed, step)', () => {
    const task = additionTask();
    expect(trainingBatch(task, 8, 1, 42)).toEqual(trainingBatch(task, 8, 1, 42));
    expect(trainingBatch(task, 8, 1, 42)).not.toEqual(trainingBatch(task, 8, 1, 43));
    expect(trainingBatch(task, 8, 1, 42)).not.toEqual(trainingBatch(task, 8, 2, 42));
  });
});

describe('batches', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('the loss mask selects exactly the positions that predict answer tokens', () => {
    const example: Example = { prompt: encode('ab='), answer: [...encode('ba'), EOS] };
    const { ids, targets, lossMask } = packBatch([example], 8);
    //            a   b   =   b   a   $   pad pad
    expect(ids.arraySync()[0]).toEqual([...encode('ab=ba'), EOS, PAD, PAD]);
    expect(targets.arraySync()[0]!.slice(0, 5)).toEqual([...encode('b=ba'), EOS]);
    // '=' predicts b, b predicts a, a predicts EOS; the prompt and padding are never learned.
    expect(lossMask.arraySync()[0]).toEqual([0, 0, 1, 1, 1, 0, 0, 0]);
    expect(() => packRows([example], 5)).toThrow(/has 6 tokens but the batch length is 5/);
    tf.dispose([ids, targets, lossMask]);
  });
});

// The two kernels this example's training leans on, as installed by initBackend() (core's fast paths).
describe.each(TEST_BACKENDS)('core fast paths on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('UnsortedSegmentSum sums rows into their segments and drops out-of-range ids', () => {
    const rng = new Rng(9);
    const rows = 50;
    const inner = 3;
    const segments = 7;
    const values = Array.from({ length: rows * inner }, () => rng.normal());
    const ids = Array.from({ length: rows }, () => rng.nextInt(segments + 2) - 1); // -1 and 7 are dropped
    const expected = new Array(segments * inner).fill(0);
    ids.forEach((s, r) => {
      if (s < 0 || s >= segments) return;
      for (let k = 0; k < inner; k++) expected[s * inner + k] += values[r * inner + k]!;
    });
    const out = tf.unsortedSegmentSum(tf.tensor2d(values, [rows, inner]), tf.tensor1d(ids, 'int32'), segments);
    expect(out.shape).toEqual([segments, inner]);
    const got = out.dataSync();
    expected.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThan(1e-5));
    out.dispose();
  });

  it('the BatchMatMul gradient equals the textbook formulas for every transpose-flag combination', () => {
    const rng = new Rng(4);
    const matrix = (r: number, c: number) => Array.from({ length: r }, () => Array.from({ length: c }, () => rng.normal()));
    const mul = (x: number[][], y: number[][]) => x.map((row) => y[0]!.map((_, j) => row.reduce((s, v, k) => s + v * y[k]![j]!, 0)));
    const t = (x: number[][]) => x[0]!.map((_, j) => x.map((row) => row[j]!));
    const [m, k, n] = [3, 4, 5];
    const A = matrix(m, k);
    const B = matrix(k, n);
    const dY = matrix(m, n);
    // dL/dA = dY B^T and dL/dB = A^T dY for C = A B; with flags the stored operand is the transpose.
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const a = tf.tensor2d(ta ? t(A) : A);
      const b = tf.tensor2d(tb ? t(B) : B);
      const dy = tf.tensor2d(dY);
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), dy)))([a, b]);
      const expectedA = ta ? t(mul(dY, t(B))) : mul(dY, t(B));
      const expectedB = tb ? t(mul(t(A), dY)) : mul(t(A), dY);
      const close = (got: tf.Tensor, want: number[][]) =>
        (got.arraySync() as number[][]).forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - want[i]![j]!)).toBeLessThan(1e-4)));
      close(grads[0]!, expectedA);
      close(grads[1]!, expectedB);
      tf.dispose([a, b, dy, ...grads]);
    }
  });
});

describe('learning (reduced: reversal of 4-5 letters)', () => {
  beforeAll(async () => {
    await initBackend(); // the default backend with core's fast paths, as the training script uses
  });

  it('a 2-layer CausalLM goes from ~0% to >= 90% held-out exact match, and greedy decoding agrees', async () => {
    const task = reversalTask({ alphabet: 8, minLength: 4, maxLength: 5 });
    const before = tf.memory().numTensors;
    const result = await runExperiment({
      task,
      model: { hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128 },
      steps: 200,
      batchSize: 32,
      learningRate: 6e-3,
      seed: 1,
      evalExamples: 300,
    });
    // Control: untrained, the metric is near chance (exact match of 5-9 tokens from 30).
    expect(result.before.accuracy).toBeLessThan(0.02);
    expect(result.history[0]!.loss!).toBeGreaterThan(2.5); // about ln(30) = 3.4
    expect(result.after.accuracy).toBeGreaterThanOrEqual(0.9);

    // Teacher-forced verdicts equal real greedy decoding, and generate() (KV cache) decodes the same tokens.
    const sample = result.heldOut.slice(0, 48);
    const prompts = sample.map((e) => e.prompt);
    const decoded = greedyAnswers(result.model, prompts, task.maxAnswerLength);
    sample.forEach((e, i) => expect(sameAnswer(decoded[i]!, e.answer)).toBe(result.after.verdicts[i]));
    const generated = await generate(result.model, prompts, { maxNewTokens: task.maxAnswerLength, eosTokenId: EOS, padTokenId: PAD });
    expect(generated.tokens).toEqual(decoded);
    expect(exactMatch(result.model, sample).verdicts).toEqual(result.after.verdicts.slice(0, 48));

    result.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the training script', () => {
  it('prints the problem and the usage on stderr and exits 2 for an unknown flag, before any training', async () => {
    expect(await unknownFlagProblems(new URL('../dist/train.js', import.meta.url))).toEqual([]);
  });
});
