// Tokenized fusion learns: a tiny backbone trained on "label prompt -> that label's code sequence" (with 10% of
// prompts dropped to [BOS], the unconditional path) generates each label's codes from its prompt far above chance
// (1/8 per code), greedy and with guidance.
import { describe, it, expect, beforeAll } from 'vitest';
import { Trainer, manualSeed } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { compose, tokenizedFusion, type ComposedModel, type ComposedSample } from '../src/index';
import { BOS, tinyBackbone } from './helpers/toy';
import { TOY_CODES, codesFor, toyCodesModality } from './helpers/toy-codes';

const LABELS = 4;
const LABEL_ID = 4; // text id of label 0

function sample(label: number, dropped: boolean): ComposedSample {
  return [
    { text: dropped ? [BOS] : [BOS, LABEL_ID + label], trained: false },
    { modality: 'img', item: { codes: codesFor(label) } },
  ];
}

function accuracy(codes: number[][]): number {
  let right = 0;
  codes.forEach((row, i) => row.forEach((c, j) => (right += c === codesFor(i % LABELS)[j] ? 1 : 0)));
  return right / (codes.length * TOY_CODES);
}

describe('tokenized fusion learning', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('generates the label codes from the label prompt after training (far above the 1/8 chance)', { timeout: 600_000 }, async () => {
    manualSeed(21);
    const fusion = tokenizedFusion({ unconditionalPrompt: [BOS], zLoss: 1e-4 });
    const model = compose({ backbone: tinyBackbone(), modalities: { img: toyCodesModality() }, fusion: { img: fusion } });
    try {
      const prompts = Array.from({ length: LABELS * 2 }, (_, i) => [{ text: [BOS, LABEL_ID + (i % LABELS)] }]) as ComposedSample[];
      const before = accuracy((await fusion.generateImage(model, prompts)).codes);
      model.trainOnly('all');
      const trainer = new Trainer<ComposedModel, ComposedSample[]>({
        model,
        loss: (m, batch) => m.loss(batch),
        // Deterministic batches: every label twice, one in ten prompts dropped to the unconditional [BOS].
        batchAt: (step) => Array.from({ length: 8 }, (_, i) => sample(i % LABELS, (step * 8 + i) % 10 === 0)),
        steps: 150,
        optimizer: { learningRate: 0.01, weightDecay: 0 },
        progress: false,
      });
      const { history } = await trainer.fit();
      trainer.dispose();
      const greedy = accuracy((await fusion.generateImage(model, prompts)).codes);
      const guided = accuracy((await fusion.generateImage(model, prompts, { guidance: 2, temperature: 0.5, seed: 3 })).codes);
      console.log(`tokenized learning: loss ${history[0]!.loss!.toFixed(3)} -> ${history.at(-1)!.loss!.toFixed(3)}; code accuracy ${before} -> greedy ${greedy}, guided (w 2, T 0.5) ${guided}`);
      expect(history.at(-1)!.loss!).toBeLessThan(history[0]!.loss! / 4);
      expect(greedy).toBeGreaterThanOrEqual(0.9);
      expect(guided).toBeGreaterThanOrEqual(0.8);
    } finally {
      model.dispose();
    }
  });
});
