import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShapesDataset, fineDetailOptions } from '@chimera-examples/shapes-dataset';
import { answerGrid, answerTiles, comparisonTable, heldOutExamples, scoreExamples, sizeTable, writeAnswerGrid } from '../src';

const dataset = new ShapesDataset(fineDetailOptions({ sizes: 'all', seed: 0 }));
const examples = heldOutExamples(dataset, ['shape', 'color'], 30);
const correct = examples.map((_, i) => i % 3 !== 0);
const score = { ...scoreExamples(examples, correct), correct, answers: examples.map((e, i) => (correct[i] ? e.answer : 'star')) };

describe('answers picture', () => {
  it('shows each type on images of several sizes and aspect ratios, green right and red wrong with the answer', () => {
    const tiles = answerTiles(examples, score, { types: ['shape', 'color'], count: 16 });
    expect(tiles).toHaveLength(16);
    const shapeTiles = tiles.slice(0, 8);
    const sizes = new Set(shapeTiles.map((t) => `${t.image.width}x${t.image.height}`));
    expect(sizes.size).toBeGreaterThanOrEqual(4); // cycles through the sizes, not the first few scenes
    expect(new Set(shapeTiles.map((t) => t.image.width / t.image.height)).size).toBeGreaterThanOrEqual(2);
    for (const tile of tiles) {
      const wrong = tile.caption!.some((line) => line.startsWith('(is '));
      expect(tile.captionColor).toEqual(wrong ? [240, 90, 90] : [120, 220, 120]);
    }
    expect(tiles.some((t) => t.caption!.some((l) => l.startsWith('(is ')))).toBe(true);
  });

  it('lays out images of different sizes in one grid and writes it as a PNG', () => {
    const grid = answerGrid(examples, score, { count: 12, columns: 6, scale: 2 });
    const largest = Math.max(...examples.map((e) => e.image.width));
    expect(grid.width).toBeGreaterThanOrEqual(6 * largest * 2);
    const dir = mkdtempSync(join(tmpdir(), 'shapes-vqa-'));
    try {
      const path = join(dir, 'answers.png');
      writeAnswerGrid(path, examples, score, { count: 12 });
      expect(readFileSync(path).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => answerTiles(examples.slice(1), score)).toThrow(/answers for 59 examples/);
  });
});

describe('tables', () => {
  it('puts the model and its baselines side by side per type, and sizes seen before unseen', () => {
    const baseline = scoreExamples(examples, examples.map(() => false));
    const lines = comparisonTable([{ name: 'model', score }, { name: 'text-only', score: baseline }], ['shape', 'color']);
    expect(lines[0]).toMatch(/^question\s+model\s+text-only\s+held-out$/);
    expect(lines[1]).toMatch(/^shape\s+\d+\.\d%\s+0\.0%\s+30$/);
    expect(lines[3]).toMatch(/^all\s+66\.7%\s+0\.0%\s+60$/);
    const sizes = sizeTable(score, ['96x96', '128x96', '96x128', '128x128']);
    const firstUnseen = sizes.findIndex((l) => l.startsWith('unseen'));
    expect(firstUnseen).toBeGreaterThan(0);
    expect(sizes.slice(firstUnseen).every((l) => l.startsWith('unseen'))).toBe(true);
  });
});
