/**
 * The synthetic sequence tasks and their train / held-out split. A task draws problems as (prompt, answer) token
 * lists; the answer ends with EOS. Which split a problem belongs to is a hash of its prompt, so the two splits
 * never share a problem however many examples either side draws.
 *
 *   reversal   `dacb=` -> `bcad$`            letters from an alphabet, lengths in [minLength, maxLength]
 *   addition   `210+543=` -> `7530$`          12 + 345 = 357: operands zero-padded to `digits` digits and every
 *                                             number written least-significant digit first
 *
 * Why addition is written reversed: a causal model emits the answer left to right, and with the least significant
 * digit first each answer digit depends only on the two operand digits at the same place and the carry, which the
 * previous answer digit and operand digits already fix. Most-significant-first would need the whole carry chain
 * before the first answer token, which a small model learns far more slowly.
 */
import { Rng } from '@chimera/core';
import { EOS, MAX_LETTERS, encode, digitToken, letterToken } from './vocabulary';

export interface Example {
  /** Tokens up to and including '='. */
  prompt: number[];
  /** The expected continuation, ending with EOS. */
  answer: number[];
}

export interface SequenceTask {
  readonly name: string;
  /** Longest prompt + answer, in tokens. */
  readonly maxLength: number;
  /** Longest answer, EOS included (what a decoder must generate at most). */
  readonly maxAnswerLength: number;
  /** How many distinct problems exist (both splits together). */
  readonly problemCount: number;
  /** A uniformly drawn problem of either split: what held-out problems are drawn from. */
  draw(rng: Rng): Example;
  /** A problem drawn from the training distribution (default: `draw`). */
  drawForTraining?(rng: Rng): Example;
}

export type Split = 'train' | 'heldout';

export interface ReversalOptions {
  /** Letters to draw from, 2 .. 16 (default 8). */
  alphabet?: number;
  minLength?: number;
  maxLength?: number;
}

/** `a b c d = d c b a $`: the answer is the prompt's letters in reverse order. */
export function reversalTask(options: ReversalOptions = {}): SequenceTask {
  const alphabet = options.alphabet ?? 8;
  const minLength = options.minLength ?? 4;
  const maxLength = options.maxLength ?? 8;
  if (!(Number.isInteger(alphabet) && alphabet >= 2 && alphabet <= MAX_LETTERS)) {
    throw new Error(`reversalTask: alphabet must be an integer in [2, ${MAX_LETTERS}], got ${alphabet}`);
  }
  if (!(Number.isInteger(minLength) && Number.isInteger(maxLength) && minLength >= 1 && maxLength >= minLength)) {
    throw new Error(`reversalTask: need integers 1 <= minLength <= maxLength, got minLength ${minLength}, maxLength ${maxLength}`);
  }
  // Lengths are drawn in proportion to how many sequences each has, so every problem is equally likely.
  const countOfLength = (length: number) => alphabet ** length;
  let problemCount = 0;
  for (let length = minLength; length <= maxLength; length++) problemCount += countOfLength(length);
  return {
    name: `reversal (${alphabet} letters, length ${minLength}-${maxLength})`,
    maxLength: 2 * maxLength + 2,
    maxAnswerLength: maxLength + 1,
    problemCount,
    draw(rng) {
      let pick = rng.next() * problemCount;
      let length = minLength;
      while (length < maxLength && pick >= countOfLength(length)) pick -= countOfLength(length++);
      const letters = Array.from({ length }, () => letterToken(rng.nextInt(alphabet)));
      return { prompt: [...letters, ...encode('=')], answer: [...letters.reverse(), EOS] };
    },
  };
}

export interface AdditionOptions {
  /** Digits per operand, 1 .. 6 (default 3: operands 0 .. 999). */
  digits?: number;
  /**
   * Train on operands whose digit count is uniform in 1 .. digits (default true) instead of uniform values, where
   * 90% have all the digits. Short operands give answer digits that copy the other operand's digit, which teaches
   * the model where the aligned digits are before it has learned to add them, and shortens the long loss plateau
   * that uniform operands start with. Held-out problems stay uniform over all operand pairs.
   */
  balancedDigits?: boolean;
}

/** `a + b = s $` with zero-padded operands and every number least-significant digit first. */
export function additionTask(options: AdditionOptions = {}): SequenceTask {
  const digits = options.digits ?? 3;
  if (!(Number.isInteger(digits) && digits >= 1 && digits <= 6)) throw new Error(`additionTask: digits must be an integer in [1, 6], got ${digits}`);
  const limit = 10 ** digits;
  return {
    name: `addition (${digits}-digit operands, digits reversed${options.balancedDigits === false ? '' : ', trained on balanced digit counts'})`,
    maxLength: 2 * digits + 2 + digits + 2,
    maxAnswerLength: digits + 2,
    problemCount: limit * limit,
    draw(rng) {
      return additionExample(rng.nextInt(limit), rng.nextInt(limit), digits);
    },
    drawForTraining(rng) {
      if (options.balancedDigits === false) return this.draw(rng);
      // A digit count, then a value with exactly that many digits (0 counts as a 1-digit number).
      const operand = () => {
        const count = 1 + rng.nextInt(digits);
        const low = count === 1 ? 0 : 10 ** (count - 1);
        return low + rng.nextInt(10 ** count - low);
      };
      return additionExample(operand(), operand(), digits);
    },
  };
}

/** The addition example for a + b (exported for tests and for reading results). */
export function additionExample(a: number, b: number, digits: number): Example {
  return {
    prompt: [...reversedDigits(a, digits), ...encode('+'), ...reversedDigits(b, digits), ...encode('=')],
    answer: [...reversedDigits(a + b, digits + 1), EOS],
  };
}

function reversedDigits(value: number, width: number): number[] {
  return Array.from({ length: width }, (_, place) => digitToken(Math.floor(value / 10 ** place) % 10));
}

/** Share of problems in the held-out split (one in ten). */
export const HELDOUT_SHARE = 0.1;

/** Which split a problem belongs to: a fixed hash (FNV-1a) of its prompt, not of anything a run chooses. */
export function splitOf(example: Example): Split {
  let hash = 0x811c9dc5;
  for (const token of example.prompt) {
    hash ^= token;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  // Mix the low bits before taking the share (FNV's low bits are weak for short inputs).
  hash ^= hash >>> 15;
  hash = Math.imul(hash, 0x2c1b3c6d) >>> 0;
  hash ^= hash >>> 12;
  return (hash >>> 0) / 4294967296 < HELDOUT_SHARE ? 'heldout' : 'train';
}

/** A problem of the given split, by redrawing until one lands there (training problems from the training distribution). */
export function drawFrom(task: SequenceTask, split: Split, rng: Rng): Example {
  const draw = split === 'train' && task.drawForTraining ? task.drawForTraining.bind(task) : task.draw.bind(task);
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const example = draw(rng);
    if (splitOf(example) === split) return example;
  }
  throw new Error(`drawFrom: no ${split} problem of ${task.name} in 10000 draws; the task has too few problems to split`);
}

/** `count` distinct held-out problems (fewer if the split has fewer), drawn with a seeded generator. */
export function heldOutSet(task: SequenceTask, count: number, seed: number): Example[] {
  const rng = new Rng(seed);
  const seen = new Set<string>();
  const out: Example[] = [];
  const expected = task.problemCount * HELDOUT_SHARE;
  for (let attempt = 0; out.length < count && attempt < 50 * count; attempt++) {
    const example = drawFrom(task, 'heldout', rng);
    const key = example.prompt.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(example);
  }
  if (out.length < Math.min(count, expected / 2)) {
    throw new Error(`heldOutSet: found only ${out.length} of ${count} distinct held-out problems of ${task.name}; ask for fewer`);
  }
  return out;
}

/** The training examples of a step: a pure function of (seed, step), as core's Trainer requires. */
export function trainingBatch(task: SequenceTask, batchSize: number, seed: number, step: number): Example[] {
  const rng = new Rng(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b));
  return Array.from({ length: batchSize }, () => drawFrom(task, 'train', rng));
}
