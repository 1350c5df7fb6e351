import { describe, expect, it } from 'vitest';
import {
  COLOR_NAMES,
  GENERATION_PAIRS,
  HELD_OUT_PAIRS,
  SEEN_PAIRS,
  SHAPE_KINDS,
  ShapesDataset,
  generationOptions,
  generationSample,
  generationSamples,
  promptFor,
} from '../src/index';

describe('generation set', () => {
  it('splits the 30 pairs 24 / 6, every kind and colour still seen', () => {
    expect(GENERATION_PAIRS).toHaveLength(30);
    expect(HELD_OUT_PAIRS).toHaveLength(6);
    expect(SEEN_PAIRS).toHaveLength(24);
    for (const kind of SHAPE_KINDS) expect(SEEN_PAIRS.filter((p) => p.kind === kind).length).toBeGreaterThanOrEqual(4);
    for (const color of COLOR_NAMES) expect(SEEN_PAIRS.filter((p) => p.color === color).length).toBeGreaterThanOrEqual(4);
    expect(new Set(GENERATION_PAIRS.map(promptFor)).size).toBe(30);
  });

  it('gives 32x32 single-shape images whose pair and prompt come from the scene', () => {
    const dataset = new ShapesDataset(generationOptions({ seed: 3 }));
    for (let i = 0; i < 40; i++) {
      const s = generationSample(dataset, 'train', i);
      expect([s.image.width, s.image.height]).toEqual([32, 32]);
      expect(s.prompt).toBe(`a ${s.scene.shapes[0]!.color} ${s.scene.shapes[0]!.kind}`);
      expect(s.heldOut).toBe(HELD_OUT_PAIRS.some((p) => p.kind === s.kind && p.color === s.color));
    }
  });

  it('filters seen and held-out samples deterministically', () => {
    const dataset = new ShapesDataset(generationOptions());
    const seen = generationSamples(dataset, 'train', 50, 'seen');
    const held = generationSamples(dataset, 'test', 20, 'held-out');
    expect(seen.every((s) => !s.heldOut)).toBe(true);
    expect(held.every((s) => s.heldOut)).toBe(true);
    expect(generationSamples(dataset, 'train', 50, 'seen').map((s) => s.index)).toEqual(seen.map((s) => s.index));
  });

  it('refuses a multi-shape dataset', () => {
    const dataset = new ShapesDataset(generationOptions({ shapesPerImage: 3, shapeSize: { min: 6, max: 8 } }));
    expect(() => generationSample(dataset, 'train', 0)).toThrow(/needs one shape per image/);
  });
});
