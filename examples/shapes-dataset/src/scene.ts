// Scene sampling: the full description of one image (background, and every shape's kind, colour, size and
// place), drawn from a 32-bit seed. Rendering (render.ts) and questions (questions.ts) read only this.
import type { ResolvedShapesOptions } from './options';
import { PALETTE, type ColorName } from './palette';
import type { ShapeKind } from './kinds';
import { SeededRandom } from './random';

export type SizeClass = 'small' | 'large';

/** A box in pixel coordinates (x to the right, y down); x1/y1 are exclusive edges. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface SceneShape {
  kind: ShapeKind;
  color: ColorName;
  /** The drawn colour: the palette colour plus this shape's jitter. */
  rgb: [number, number, number];
  /** Side of the bounding box in pixels (real-valued). */
  size: number;
  sizeClass: SizeClass;
  center: { x: number; y: number };
  bbox: Box;
}

export interface Scene {
  width: number;
  height: number;
  background: {
    /** Base grey level as RGB. */
    rgb: [number, number, number];
    /** Uniform per-pixel noise amplitude. */
    noise: number;
    /** Seeds the noise, so the scene alone determines every pixel. */
    noiseSeed: number;
  };
  /** Sub-samples per pixel side when rendering. */
  antialias: number;
  /** In drawing order; bounding boxes never overlap. */
  shapes: SceneShape[];
}

/** Placement attempts per shape before the scene settles for fewer shapes. */
const PLACEMENT_TRIES = 200;

/** Fraction of the size range each band (small, large) covers; the rest is the gap between them. */
export const SIZE_BAND = 0.4;

/** The size range of a band. */
export function sizeBand(options: Pick<ResolvedShapesOptions, 'shapeSize'>, sizeClass: SizeClass): { min: number; max: number } {
  const { min, max } = options.shapeSize;
  const width = SIZE_BAND * (max - min);
  return sizeClass === 'small' ? { min, max: min + width } : { min: max - width, max };
}

/**
 * Draws a scene. The shape count is drawn from options.shapesPerImage; in a crowded image a shape that finds no
 * free place in PLACEMENT_TRIES attempts is left out (the first one placed always fits), so read the count from
 * `scene.shapes`, never from the options.
 */
export function generateScene(seed: number, options: ResolvedShapesOptions): Scene {
  const rng = new SeededRandom(seed);
  // One size draws nothing, so single-size datasets keep the scenes they had before sizes could vary.
  const { width, height } = options.imageSizes.length === 1 ? options.imageSizes[0]! : rng.pick(options.imageSizes);
  const level = Math.round(rng.uniform(options.backgroundLevel.min, options.backgroundLevel.max));
  const count = rng.intBetween(options.shapesPerImage.min, options.shapesPerImage.max);
  const specs = Array.from({ length: count }, () => {
    const kind = rng.pick(options.kinds);
    const color = rng.pick(options.colors);
    const rgb = PALETTE[color].map((c) => clampByte(Math.round(c + rng.uniform(-1, 1) * options.colorJitter))) as [number, number, number];
    const sizeClass: SizeClass = rng.chance(0.5) ? 'small' : 'large';
    return { kind, color, rgb, sizeClass };
  });
  // Large shapes are placed first (small ones fit the gaps they leave), so crowding rarely drops a shape and,
  // when it does, does not favour one size class; the scene keeps the drawn order.
  const placementOrder = specs.map((_, i) => i).sort((a, b) => Number(specs[a]!.sizeClass === 'small') - Number(specs[b]!.sizeClass === 'small'));
  const placed: (SceneShape | null)[] = specs.map(() => null);
  for (const i of placementOrder) {
    const spec = specs[i]!;
    const band = sizeBand(options, spec.sizeClass);
    for (let attempt = 0; attempt < PLACEMENT_TRIES; attempt++) {
      const side = rng.uniform(band.min, band.max);
      const low = options.minGap + side / 2;
      const center = { x: rng.uniform(low, width - low), y: rng.uniform(low, height - low) };
      const bbox = { x0: center.x - side / 2, y0: center.y - side / 2, x1: center.x + side / 2, y1: center.y + side / 2 };
      if (placed.every((other) => other === null || apart(bbox, other.bbox, options.minGap))) {
        placed[i] = { ...spec, size: side, center, bbox };
        break;
      }
    }
  }
  const shapes = placed.filter((s): s is SceneShape => s !== null);
  return {
    width,
    height,
    background: { rgb: [level, level, level], noise: options.backgroundNoise, noiseSeed: rng.nextUint32() },
    antialias: options.antialias,
    shapes,
  };
}

/** Whether two boxes are separated by at least `gap` pixels along some axis. */
function apart(a: Box, b: Box, gap: number): boolean {
  return a.x1 + gap <= b.x0 || b.x1 + gap <= a.x0 || a.y1 + gap <= b.y0 || b.y1 + gap <= a.y0;
}

function clampByte(value: number): number {
  return Math.min(255, Math.max(0, value));
}
