// A toy discrete modality for tokenized fusion tests: an item is its codes (a 2x2 grid over an 8-code book);
// tokenize returns them, detokenize gives them back as plain arrays. `codesFor(label)` is the rule a learning
// test teaches: each label has its own code sequence.
import * as tf from '@tensorflow/tfjs';
import type { Modality } from '@chimera/core';

export const TOY_CODEBOOK = 8;
export const TOY_GRID = [2, 2] as const;
export const TOY_CODES = TOY_GRID[0] * TOY_GRID[1];

export interface CodeItem {
  codes: number[];
}

/** The code sequence of a label (distinct per label, overlapping between labels so the label matters). */
export function codesFor(label: number): number[] {
  return Array.from({ length: TOY_CODES }, (_, i) => (label * 3 + i * (label + 1)) % TOY_CODEBOOK);
}

export function toyCodesModality(name = 'img', codebookSize = TOY_CODEBOOK): Modality<number[], CodeItem, number[]> {
  return {
    name,
    prepare: (raw) => ({ codes: [...raw] }),
    tokensFor: () => TOY_CODES,
    discrete: {
      codebookSize,
      embeddingDim: codebookSize,
      latentGrid: TOY_GRID,
      tokenize: (items) => tf.tensor2d(items.map((i) => i.codes), [items.length, TOY_CODES], 'int32'),
      lookup: (ids) => tf.oneHot(tf.cast(ids, 'int32'), codebookSize),
      detokenize: (ids) => ids.arraySync() as number[][],
    },
  };
}
