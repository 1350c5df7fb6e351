import { describe, expect, it } from 'vitest';
import {
  FINE_DETAIL_SEEN_SIZES,
  FINE_DETAIL_UNSEEN_SIZES,
  FINE_DETAIL_TYPES,
  ShapesDataset,
  fineDetailOptions,
  sizeKey,
} from '../src/index';

describe('image sizes', () => {
  it('a single entry of imageSizes gives the scenes and pixels of the same square imageSize', () => {
    const square = new ShapesDataset({ imageSize: 40, shapesPerImage: { min: 1, max: 3 } });
    const listed = new ShapesDataset({ imageSizes: [{ width: 40, height: 40 }], shapesPerImage: { min: 1, max: 3 } });
    for (let i = 0; i < 20; i++) {
      const a = square.sample('train', i);
      const b = listed.sample('train', i);
      expect(b.scene).toEqual(a.scene);
      expect(Buffer.from(b.image.data).equals(Buffer.from(a.image.data))).toBe(true);
    }
  });

  it('draws every listed size, and keeps shapes inside rectangular images', () => {
    const sizes = [
      { width: 64, height: 24 },
      { width: 24, height: 64 },
    ];
    const dataset = new ShapesDataset({ imageSizes: sizes, shapeSize: { min: 6, max: 10 }, shapesPerImage: { min: 1, max: 3 }, minGap: 1 });
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const { scene, image } = dataset.sample('test', i);
      seen.add(sizeKey(scene));
      expect(image.width).toBe(scene.width);
      expect(image.height).toBe(scene.height);
      expect(image.data.length).toBe(scene.width * scene.height * 3);
      for (const shape of scene.shapes) {
        expect(shape.bbox.x0).toBeGreaterThanOrEqual(1);
        expect(shape.bbox.y0).toBeGreaterThanOrEqual(1);
        expect(shape.bbox.x1).toBeLessThanOrEqual(scene.width - 1);
        expect(shape.bbox.y1).toBeLessThanOrEqual(scene.height - 1);
      }
    }
    expect([...seen].sort()).toEqual(['24x64', '64x24']);
  });

  it('refuses an empty list, sides under 8 pixels, and shapes that do not fit the shortest side', () => {
    expect(() => new ShapesDataset({ imageSizes: [] })).toThrow(/imageSizes is empty/);
    expect(() => new ShapesDataset({ imageSizes: [{ width: 64, height: 6 }], shapeSize: { min: 3, max: 4 } })).toThrow(/64x6/);
    expect(() => new ShapesDataset({ imageSizes: [{ width: 96, height: 16 }], shapeSize: { min: 8, max: 15 } })).toThrow(
      /shortest image side/,
    );
  });
});

describe('the fine-detail task', () => {
  it('trains on the seen sizes and holds out sizes and aspect ratios no training image has', () => {
    const seenKeys = new Set(FINE_DETAIL_SEEN_SIZES.map(sizeKey));
    const seenRatios = new Set(FINE_DETAIL_SEEN_SIZES.map((d) => (d.width / d.height).toFixed(3)));
    for (const dims of FINE_DETAIL_UNSEEN_SIZES) expect(seenKeys.has(sizeKey(dims))).toBe(false);
    expect(FINE_DETAIL_UNSEEN_SIZES.some((d) => !seenRatios.has((d.width / d.height).toFixed(3)))).toBe(true);

    const seen = new ShapesDataset(fineDetailOptions({ seed: 3 }));
    const drawn = new Set<string>();
    for (let i = 0; i < 80; i++) drawn.add(sizeKey(seen.sample('train', i).scene));
    expect([...drawn].sort()).toEqual([...seenKeys].sort());
    const unseen = new ShapesDataset(fineDetailOptions({ sizes: 'unseen', seed: 3 }));
    for (let i = 0; i < 30; i++) expect(seenKeys.has(sizeKey(unseen.sample('test', i).scene))).toBe(false);
  });

  it('draws small shapes (8-14 px) whatever the image size, and asks kind questions about them', () => {
    const dataset = new ShapesDataset(fineDetailOptions({ sizes: 'all' }));
    for (let i = 0; i < 40; i++) {
      const sample = dataset.question('validation', i, { types: FINE_DETAIL_TYPES });
      for (const shape of sample.scene.shapes) {
        expect(shape.size).toBeGreaterThanOrEqual(8);
        expect(shape.size).toBeLessThanOrEqual(14);
      }
      expect(FINE_DETAIL_TYPES).toContain(sample.question.type);
    }
  });

  it('lets any dataset option be overridden, and names a bad size choice', () => {
    const options = fineDetailOptions({ sizes: [{ width: 100, height: 60 }], shapesPerImage: 2, seed: 9 });
    expect(options.imageSizes).toEqual([{ width: 100, height: 60 }]);
    expect(options.shapesPerImage).toBe(2);
    expect(options.seed).toBe(9);
    expect(() => fineDetailOptions({ sizes: 'big' as never })).toThrow(/'seen', 'unseen', 'all'/);
  });
});
