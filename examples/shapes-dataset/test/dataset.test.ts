import { describe, expect, it } from 'vitest';
import {
  ShapesDataset,
  SPLITS,
  SPLIT_NAMES,
  SHAPE_KINDS,
  COLOR_NAMES,
  PALETTE,
  deriveSeed,
  generateScene,
  renderScene,
  resolveShapesOptions,
  sampleId,
  sizeBand,
  splitOf,
  type Scene,
} from '../src/index';

function imageKey(data: Uint8Array): string {
  return Buffer.from(data).toString('base64');
}

describe('splits', () => {
  it('are disjoint ranges of 32-bit ids that cover only valid ids', () => {
    const ranges = SPLIT_NAMES.map((name) => SPLITS[name]).sort((a, b) => a.start - b.start);
    for (let i = 0; i < ranges.length; i++) {
      const { start, size } = ranges[i]!;
      expect(start).toBeGreaterThanOrEqual(0);
      expect(start + size).toBeLessThanOrEqual(2 ** 32);
      if (i > 0) expect(start).toBeGreaterThanOrEqual(ranges[i - 1]!.start + ranges[i - 1]!.size);
    }
  });

  it('map (split, index) to ids inside the split, and refuse indices outside it', () => {
    for (const name of SPLIT_NAMES) {
      const { start, size } = SPLITS[name];
      expect(sampleId(name, 0)).toBe(start);
      expect(sampleId(name, size - 1)).toBe(start + size - 1);
      expect(splitOf(sampleId(name, 12345))).toBe(name);
      expect(() => sampleId(name, size)).toThrow(/outside split/);
      expect(() => sampleId(name, -1)).toThrow(/outside split/);
      expect(() => sampleId(name, 1.5)).toThrow(/outside split/);
    }
    expect(() => sampleId('dev' as never, 0)).toThrow(/unknown split 'dev'/);
  });

  it('give every sample id its own seed (the seed derivation is a bijection of the id)', () => {
    const seeds = new Set<number>();
    for (const name of SPLIT_NAMES) {
      for (let i = 0; i < 20000; i++) seeds.add(deriveSeed(7, sampleId(name, i)));
    }
    expect(seeds.size).toBe(3 * 20000);
  });

  it('never repeat a training image among the held-out images', () => {
    const dataset = new ShapesDataset();
    const train = new Set<string>();
    for (let i = 0; i < 2000; i++) train.add(imageKey(dataset.sample('train', i).image.data));
    expect(train.size).toBe(2000);
    for (const split of ['validation', 'test'] as const) {
      for (let i = 0; i < 400; i++) expect(train.has(imageKey(dataset.sample(split, i).image.data))).toBe(false);
    }
  });
});

describe('determinism', () => {
  it('gives the same scene and pixels for the same (options, split, index), from a fresh instance', () => {
    const a = new ShapesDataset({ shapesPerImage: { min: 1, max: 3 }, seed: 5 });
    const b = new ShapesDataset({ shapesPerImage: { min: 1, max: 3 }, seed: 5 });
    for (const index of [0, 1, 99, 123456789]) {
      const x = a.question('test', index);
      const y = b.question('test', index);
      expect(y.scene).toEqual(x.scene);
      expect(y.question).toEqual(x.question);
      expect(imageKey(y.image.data)).toBe(imageKey(x.image.data));
    }
  });

  it('changes every sample when the dataset seed changes', () => {
    const a = new ShapesDataset({ seed: 1 });
    const b = new ShapesDataset({ seed: 2 });
    for (let i = 0; i < 50; i++) expect(imageKey(a.sample('train', i).image.data)).not.toBe(imageKey(b.sample('train', i).image.data));
  });
});

describe('scenes', () => {
  const options = resolveShapesOptions({ shapesPerImage: { min: 1, max: 4 }, imageSize: 48 });
  const dataset = new ShapesDataset(options);
  const scenes: Scene[] = Array.from({ length: 600 }, (_, i) => dataset.scene('train', i));

  it('keep shapes inside the image, apart from each other, with sizes in their class band', () => {
    for (const scene of scenes) {
      expect(scene.shapes.length).toBeGreaterThanOrEqual(1);
      expect(scene.shapes.length).toBeLessThanOrEqual(4);
      scene.shapes.forEach((s, i) => {
        expect(s.bbox.x0).toBeGreaterThanOrEqual(options.minGap - 1e-9);
        expect(s.bbox.y0).toBeGreaterThanOrEqual(options.minGap - 1e-9);
        expect(s.bbox.x1).toBeLessThanOrEqual(scene.width - options.minGap + 1e-9);
        expect(s.bbox.y1).toBeLessThanOrEqual(scene.height - options.minGap + 1e-9);
        expect(s.bbox.x1 - s.bbox.x0).toBeCloseTo(s.size, 9);
        const band = sizeBand(options, s.sizeClass);
        expect(s.size).toBeGreaterThanOrEqual(band.min);
        expect(s.size).toBeLessThanOrEqual(band.max);
        expect(SHAPE_KINDS).toContain(s.kind);
        expect(COLOR_NAMES).toContain(s.color);
        s.rgb.forEach((c, ch) => expect(Math.abs(c - PALETTE[s.color][ch]!)).toBeLessThanOrEqual(options.colorJitter));
        for (const other of scene.shapes.slice(i + 1)) {
          const separated =
            s.bbox.x1 + options.minGap <= other.bbox.x0 + 1e-9 ||
            other.bbox.x1 + options.minGap <= s.bbox.x0 + 1e-9 ||
            s.bbox.y1 + options.minGap <= other.bbox.y0 + 1e-9 ||
            other.bbox.y1 + options.minGap <= s.bbox.y0 + 1e-9;
          expect(separated).toBe(true);
        }
      });
    }
  });

  it('cover every kind, colour, size class and shape count', () => {
    const shapes = scenes.flatMap((s) => s.shapes);
    expect(new Set(shapes.map((s) => s.kind)).size).toBe(SHAPE_KINDS.length);
    expect(new Set(shapes.map((s) => s.color)).size).toBe(COLOR_NAMES.length);
    expect(new Set(shapes.map((s) => s.sizeClass)).size).toBe(2);
    expect(new Set(scenes.map((s) => s.shapes.length))).toEqual(new Set([1, 2, 3, 4]));
    // Crowding may drop a shape now and then, not often.
    const mean = scenes.reduce((sum, s) => sum + s.shapes.length, 0) / scenes.length;
    expect(mean).toBeGreaterThan(2.3);
  });
});

describe('rendering', () => {
  // Plain background, no jitter, a big shape: the summed coverage must match the shape's analytic area.
  const unitArea: Record<string, number> = {
    circle: Math.PI / 4,
    square: 1,
    triangle: 0.5,
    cross: (2 * 0.68 * 2 - 0.68 * 0.68) / 4,
  };

  it.each(Object.keys(unitArea))('fills the analytic area of a %s', (kind) => {
    const options = resolveShapesOptions({
      imageSize: 64,
      kinds: [kind as never],
      shapeSize: { min: 40, max: 60 },
      backgroundNoise: 0,
      colorJitter: 0,
      antialias: 8,
    });
    for (let seed = 0; seed < 3; seed++) {
      const scene = generateScene(seed, options);
      const image = renderScene(scene);
      const shape = scene.shapes[0]!;
      const bg = scene.background.rgb[0];
      const channel = shape.rgb.findIndex((c) => Math.abs(c - bg) > 100);
      let coverage = 0;
      for (let i = 0; i < 64 * 64; i++) coverage += (image.data[i * 3 + channel]! - bg) / (shape.rgb[channel]! - bg);
      expect(coverage / shape.size ** 2).toBeCloseTo(unitArea[kind]!, 1);
      // The centre pixel has the shape's colour; a corner of the image is background.
      const at = (Math.floor(shape.center.y) * 64 + Math.floor(shape.center.x)) * 3;
      expect([...image.data.slice(at, at + 3)]).toEqual(shape.rgb);
      const corner = scene.shapes.every((s) => s.bbox.x0 > 1 || s.bbox.y0 > 1) ? 0 : 64 * 64 - 1;
      expect([...image.data.slice(corner * 3, corner * 3 + 3)]).toEqual(scene.background.rgb);
    }
  });

  it('keeps background noise within its amplitude', () => {
    const dataset = new ShapesDataset({ backgroundNoise: 6 });
    const { scene, image } = dataset.sample('train', 3);
    const inside = (x: number, y: number) => scene.shapes.some((s) => x + 1 > s.bbox.x0 && x < s.bbox.x1 && y + 1 > s.bbox.y0 && y < s.bbox.y1);
    let spread = 0;
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        if (inside(x, y)) continue;
        for (let c = 0; c < 3; c++) {
          const delta = Math.abs(image.data[(y * image.width + x) * 3 + c]! - scene.background.rgb[c]!);
          expect(delta).toBeLessThanOrEqual(6);
          spread = Math.max(spread, delta);
        }
      }
    }
    expect(spread).toBeGreaterThan(3);
  });
});

describe('classification', () => {
  it('labels the kind of the single shape, with roughly balanced classes', () => {
    const dataset = new ShapesDataset({ kinds: ['triangle', 'circle', 'square'] });
    const counts = [0, 0, 0];
    for (let i = 0; i < 900; i++) {
      const sample = dataset.classification('train', i);
      expect(sample.scene.shapes).toHaveLength(1);
      expect(dataset.kinds[sample.label]).toBe(sample.scene.shapes[0]!.kind);
      counts[sample.label]!++;
    }
    for (const count of counts) expect(count).toBeGreaterThan(240);
  });

  it('refuses multi-shape datasets with advice', () => {
    const dataset = new ShapesDataset({ shapesPerImage: { min: 1, max: 2 } });
    expect(() => dataset.classification('train', 0)).toThrow(/needs exactly one shape per image.*shapesPerImage: 1/);
  });
});

describe('options', () => {
  it('lists every problem in one error', () => {
    expect(() => resolveShapesOptions({ imageSize: 4, kinds: ['hexagon' as never], colors: [], antialias: 0 })).toThrow(
      /imageSize must be an integer >= 8[\s\S]*kind 'hexagon' is unknown[\s\S]*colors is empty[\s\S]*antialias/,
    );
    expect(() => resolveShapesOptions({ imageSize: 16, shapeSize: { min: 4, max: 20 } })).toThrow(/shapeSize.max \(20\) must fit the image/);
  });
});
