// Geometry of dynamic resolution: Qwen2-VL's smart resize, InternVL's tile-grid choice, token positions.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { setupTestBackend, torchAvailable } from '@chimera/core/testing';
import { nativeGeometry, smartResize } from '../src/patches/native-grid';
import { candidateTileGrids, chooseTileGrid, planTiling } from '../src/patches/tiling';
import { gridWithRowBreaks, rotaryPositions2d, tokenPositions } from '../src/patches/positions';
import { runPatchesReference } from './patches-reference';

const QWEN = { patchSize: 14, mergeSize: 2, minPixels: 56 * 56, maxPixels: 14 * 14 * 4 * 1280 };

describe('smartResize (Qwen2-VL)', () => {
  it('matches hand-worked cases', () => {
    // 1080x1920: rounding gives 1092x1932 = 2.1M pixels > 1003520, so scale by beta = sqrt(2073600 / 1003520)
    // = 1.4375: 1080 / 1.4375 / 28 = 26.8 -> 26 * 28 = 728; 1920 / 1.4375 / 28 = 47.7 -> 47 * 28 = 1316.
    expect(smartResize(1080, 1920, QWEN)).toEqual({ height: 728, width: 1316 });
    // 20x30 rounds to 28x28 = 784 < 3136: beta = sqrt(3136 / 600) = 2.286; ceil(1.63) = 2 -> 56, ceil(2.45) = 3 -> 84.
    expect(smartResize(20, 30, QWEN)).toEqual({ height: 56, width: 84 });
    // Ties go to even: 70 / 28 = 2.5 -> 2, 42 / 28 = 1.5 -> 2 (Math.round would give 84x56).
    expect(smartResize(70, 42, { ...QWEN, minPixels: 0 })).toEqual({ height: 56, width: 56 });
    // Already in range: 480 / 28 = 17.1 -> 17 * 28 = 476; 640 / 28 = 22.9 -> 23 * 28 = 644.
    expect(smartResize(480, 640, QWEN)).toEqual({ height: 476, width: 644 });
    const geometry = nativeGeometry(480, 640, QWEN);
    expect(geometry.patchGrid).toEqual({ rows: 34, cols: 46 });
    expect(geometry.tokenGrid).toEqual({ rows: 17, cols: 23 });
  });

  it('refuses extreme aspect ratios and bad sizes with clear errors', () => {
    expect(() => smartResize(10, 2010, QWEN)).toThrow(/aspect ratio 201\.0:1.*200:1/);
    expect(() => smartResize(0, 10, QWEN)).toThrow(/height must be a positive integer/);
    expect(() => smartResize(2, 300, { ...QWEN, minPixels: 0, maxPixels: 28 * 28 })).toThrow(/too thin for maxPixels 784/);
    expect(() => smartResize(10, 10, { ...QWEN, maxPixels: 100 })).toThrow(/maxPixels >= \(patchSize\*mergeSize\)\^2/);
  });

  it("enforces the pixel cap: resize by default, a clear error with onOversize 'error'", () => {
    const resized = smartResize(4000, 3000, QWEN);
    expect(resized.height * resized.width).toBeLessThanOrEqual(QWEN.maxPixels);
    expect(() => smartResize(4000, 3000, { ...QWEN, onOversize: 'error' })).toThrow(
      /3000x4000 image needs .* over maxPixels 1003520.*onOversize: 'resize'/,
    );
    expect(smartResize(400, 300, { ...QWEN, onOversize: 'error' })).toEqual({ height: 392, width: 308 });
  });

  it('keeps every invariant over random sizes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), (h, w) => {
        fc.pre(Math.max(h, w) / Math.min(h, w) <= 200);
        const out = smartResize(h, w, QWEN);
        expect(out.height % 28).toBe(0);
        expect(out.width % 28).toBe(0);
        expect(out.height * out.width).toBeLessThanOrEqual(QWEN.maxPixels);
        expect(out.height * out.width).toBeGreaterThanOrEqual(Math.min(QWEN.minPixels, 28 * 28));
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it.skipIf(!torchAvailable())('agrees with the reference rule over random sizes and bounds', () => {
    const cases = fc.sample(
      fc.tuple(
        fc.integer({ min: 1, max: 4000 }),
        fc.integer({ min: 1, max: 4000 }),
        fc.constantFrom(14, 16),
        fc.constantFrom(1, 2),
        fc.constantFrom(0, 56 * 56, 256 * 28 * 28),
        fc.constantFrom(64 * 64, 14 * 14 * 4 * 1280, 1280 * 28 * 28),
      ),
      { seed: 11, numRuns: 400 },
    ).filter(([h, w, p, m, min, max]) => Math.max(h, w) / Math.min(h, w) <= 200 && min <= max && max >= (p * m) ** 2);
    const ref = runPatchesReference({
      smart_resize: cases.map(([h, w, p, m, min, max]) => [h, w, p * m, min, max]),
    });
    // The reference returns a 0 side for tiny sides with minPixels 0 (unusable); ours scales those up instead.
    const usable = cases.map((_, i) => i).filter((i) => ref.smart_resize[i]![0] > 0 && ref.smart_resize[i]![1] > 0);
    expect(usable.length).toBeGreaterThan(200);
    const ours = usable.map((i) => {
      const [h, w, patchSize, mergeSize, minPixels, maxPixels] = cases[i]!;
      const out = smartResize(h, w, { patchSize, mergeSize, minPixels, maxPixels });
      return [out.height, out.width];
    });
    expect(ours).toEqual(usable.map((i) => ref.smart_resize[i]));
    expect(smartResize(10, 200, { ...QWEN, minPixels: 0 })).toEqual({ height: 28, width: 196 });
  });
});

describe('tiling (InternVL / NVLM dynamic high resolution)', () => {
  it('lists candidate grids by tile count', () => {
    expect(candidateTileGrids(1, 4)).toEqual([
      { rows: 1, cols: 1 },
      { rows: 2, cols: 1 },
      { rows: 1, cols: 2 },
      { rows: 3, cols: 1 },
      { rows: 1, cols: 3 },
      { rows: 4, cols: 1 },
      { rows: 2, cols: 2 },
      { rows: 1, cols: 4 },
    ]);
    expect(() => candidateTileGrids(3, 2)).toThrow(/minTiles \(3\) must not exceed maxTiles \(2\)/);
  });

  it('matches hand-worked choices', () => {
    const at = (w: number, h: number, maxTiles: number) => chooseTileGrid(w, h, { tileSize: 448, maxTiles });
    // Square 1000x1000: 1x1, 2x2 and 3x3 tie on ratio; 2x2 and 3x3 each replace the best because the image has
    // more than half their pixels (1e6 > 0.5 * 448^2 * 4 = 401408, 1e6 > 0.5 * 448^2 * 9 = 903168).
    expect(at(1000, 1000, 12)).toEqual({ rows: 3, cols: 3 });
    expect(at(1000, 1000, 6)).toEqual({ rows: 2, cols: 2 });
    // A small square stays one tile: 1e4 < 401408.
    expect(at(100, 100, 12)).toEqual({ rows: 1, cols: 1 });
    // 2:1 matches 2 columns exactly.
    expect(at(800, 400, 6)).toEqual({ rows: 1, cols: 2 });
    // 16:9: 2:1 is the closest ratio (|1.78 - 2| = 0.22 < |1.78 - 1.5| = 0.28); with 12 tiles 4x2 ties with 2x1
    // and wins on area (2073600 > 0.5 * 448^2 * 8).
    expect(at(1920, 1080, 12)).toEqual({ rows: 2, cols: 4 });
    expect(at(1920, 1080, 6)).toEqual({ rows: 1, cols: 2 });
    // Tall 1:3.
    expect(at(300, 900, 6)).toEqual({ rows: 3, cols: 1 });
  });

  it('plans views: tiles then thumbnail, none for a single tile unless asked', () => {
    const wide = planTiling(1920, 1080, { tileSize: 448, maxTiles: 12 });
    expect(wide).toMatchObject({ resizedWidth: 1792, resizedHeight: 896, views: 9, thumbnailIndex: 8 });
    expect(planTiling(1920, 1080, { tileSize: 448, maxTiles: 12, thumbnail: 'first' }).thumbnailIndex).toBe(0);
    expect(planTiling(1920, 1080, { tileSize: 448, maxTiles: 12, thumbnail: 'none' })).toMatchObject({ views: 8, thumbnailIndex: -1 });
    expect(planTiling(100, 100, { tileSize: 448, maxTiles: 12 })).toMatchObject({ views: 1, thumbnailIndex: -1 });
    expect(planTiling(100, 100, { tileSize: 448, maxTiles: 12, thumbnailWithSingleTile: true })).toMatchObject({ views: 2, thumbnailIndex: 1 });
  });

  it('never exceeds maxTiles over random sizes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4000 }), fc.integer({ min: 1, max: 4000 }), fc.integer({ min: 1, max: 12 }), (w, h, maxTiles) => {
        const grid = chooseTileGrid(w, h, { tileSize: 224, maxTiles });
        expect(grid.rows * grid.cols).toBeGreaterThanOrEqual(1);
        expect(grid.rows * grid.cols).toBeLessThanOrEqual(maxTiles);
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it.skipIf(!torchAvailable())('agrees with the reference rule over random sizes', () => {
    const cases = fc.sample(
      fc.tuple(
        fc.integer({ min: 1, max: 3000 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.constantFrom(224, 336, 448),
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 2, max: 12 }),
      ),
      { seed: 5, numRuns: 400 },
    );
    const ref = runPatchesReference({ tile_grid: cases });
    const ours = cases.map(([w, h, tileSize, minTiles, maxTiles]) => {
      const grid = chooseTileGrid(w, h, { tileSize, minTiles, maxTiles });
      return [grid.cols, grid.rows];
    });
    expect(ours).toEqual(ref.tile_grid);
  });
});

describe('token positions', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('lays out (frame, row, col) frame-major then row-major', () => {
    const p = tokenPositions({ frames: 2, rows: 2, cols: 3 });
    expect(Array.from(p.frames)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(p.rows)).toEqual([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(p.cols)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(() => tokenPositions({ rows: 0, cols: 2 })).toThrow(/rows must be a positive integer/);
  });

  it('gives rotary positions [2, B, N] and the row-break grid', () => {
    const positions = rotaryPositions2d({ rows: 2, cols: 2 }, 2);
    expect(positions.shape).toEqual([2, 2, 4]);
    expect(positions.dtype).toBe('int32');
    expect(positions.arraySync()).toEqual([
      [[0, 0, 1, 1], [0, 0, 1, 1]],
      [[0, 1, 0, 1], [0, 1, 0, 1]],
    ]);
    positions.dispose();
    expect(gridWithRowBreaks({ rows: 3, cols: 5 })).toEqual({ rows: 3, cols: 6 });
    expect(tf.memory().numTensors).toBe(0);
  });
});
