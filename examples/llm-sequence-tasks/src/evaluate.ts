/**
 * Exact match on held-out problems: a problem counts only if every answer token, EOS included, is right.
 *
 * `exactMatch` scores by teacher-forced argmax: one forward pass over prompt + true answer, then the argmax at
 * every answer position. This gives exactly the verdict of greedy decoding, only faster: if every argmax given
 * the true prefix is right, greedy decoding reproduces the answer token by token; if one is wrong, the first
 * wrong one is where greedy decoding leaves the answer (its prefix up to there is the true one). `greedyAnswers`
 * decodes for real (by full recomputation, no cache) so tests and the script can confirm the two agree.
 */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM } from '@chimera/llm';
import { packRows } from './batches';
import { EOS } from './vocabulary';
import type { Example } from './tasks';

export interface ExactMatchResult {
  correct: number;
  total: number;
  /** correct / total. */
  accuracy: number;
  /** Per problem, in input order. */
  verdicts: boolean[];
}

/** Teacher-forced exact match (equal to greedy decoding's, see the file comment), in batches of `batchSize`. */
export function exactMatch(model: CausalLM, examples: readonly Example[], batchSize = 256): ExactMatchResult {
  const verdicts: boolean[] = [];
  for (let start = 0; start < examples.length; start += batchSize) {
    const chunk = examples.slice(start, start + batchSize);
    const length = Math.max(...chunk.map((e) => e.prompt.length + e.answer.length));
    const { ids, answerMask } = packRows(chunk, length);
    const predicted = tf.tidy(() => {
      const input = tf.tensor2d(ids, [chunk.length, length], 'int32');
      return tf.argMax(model.forward({ inputIds: input }).logits, -1);
    });
    const guesses = predicted.dataSync();
    predicted.dispose();
    chunk.forEach((_, row) => {
      let right = true;
      for (let t = 0; t < length - 1 && right; t++) {
        const i = row * length + t;
        if (answerMask[i] === 1 && guesses[i] !== ids[i + 1]) right = false;
      }
      verdicts.push(right);
    });
  }
  const correct = verdicts.filter(Boolean).length;
  return { correct, total: verdicts.length, accuracy: verdicts.length ? correct / verdicts.length : 0, verdicts };
}

/**
 * Greedy decoding by full recomputation: feeds prompt + generated tokens back in until EOS or `maxTokens`.
 * Prompts of one length are decoded together. Returns each problem's generated tokens (EOS included when emitted).
 */
export function greedyAnswers(model: CausalLM, prompts: readonly number[][], maxTokens: number): number[][] {
  const answers: number[][] = prompts.map(() => []);
  const byLength = new Map<number, number[]>();
  prompts.forEach((prompt, i) => byLength.set(prompt.length, [...(byLength.get(prompt.length) ?? []), i]));
  for (const [promptLength, rows] of byLength) {
    const sequences = rows.map((i) => [...prompts[i]!]);
    for (let step = 0; step < maxTokens; step++) {
      // Rows that emitted EOS drop out; the rest all hold promptLength + step tokens.
      const open = rows.map((_, r) => r).filter((r) => answers[rows[r]!]!.at(-1) !== EOS);
      if (open.length === 0) break;
      const length = promptLength + step;
      const next = tf.tidy(() => {
        const input = tf.tensor2d(open.flatMap((r) => sequences[r]!), [open.length, length], 'int32');
        return tf.argMax(model.forward({ inputIds: input }, { lastLogitsOnly: true }).logits, -1);
      });
      const tokens = next.dataSync();
      next.dispose();
      open.forEach((r, k) => {
        sequences[r]!.push(tokens[k]!);
        answers[rows[r]!]!.push(tokens[k]!);
      });
    }
  }
  return answers;
}

/** Whether a decoded answer equals the expected one exactly (EOS included). */
export function sameAnswer(decoded: readonly number[], expected: readonly number[]): boolean {
  return decoded.length === expected.length && decoded.every((token, i) => token === expected[i]);
}
