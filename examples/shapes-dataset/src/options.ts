// Generator options, their defaults and their validation.
import { COLOR_NAMES, isColorName, type ColorName } from './palette';
import { SHAPE_KINDS, isShapeKind, type ShapeKind } from './kinds';

export interface Range {
  min: number;
  max: number;
}

/** An image's size in pixels. */
export interface ImageDims {
  width: number;
  height: number;
}

export interface ShapesOptions {
  /** Side of the square images in pixels (default 32). */
  imageSize?: number;
  /**
   * Image sizes, for rectangular images or several sizes in one dataset: each sample draws one of them (seeded).
   * Overrides imageSize. With one entry every image has that size.
   */
  imageSizes?: readonly ImageDims[];
  /** Kinds to draw from (default: all of SHAPE_KINDS). Classification labels index this list. */
  kinds?: readonly ShapeKind[];
  /** Colours to draw from (default: all of COLOR_NAMES). */
  colors?: readonly ColorName[];
  /** Shapes per image: a number or an inclusive range (default 1). */
  shapesPerImage?: number | Range;
  /**
   * Side of a shape's bounding box in pixels (default 22%..45% of imageSize, or of the shortest side in imageSizes). Sizes fall in two bands, 'small'
   * (lowest 40% of the range) and 'large' (highest 40%), with a gap between so a size question has one answer.
   */
  shapeSize?: Range;
  /** Grey level of the background, 0..255, drawn per image (default 10..50). */
  backgroundLevel?: Range;
  /** Per-pixel, per-channel uniform background noise amplitude, 0..255 (default 6; 0 for a plain background). */
  backgroundNoise?: number;
  /** Per-shape, per-channel uniform colour jitter amplitude around the palette colour (default 12). */
  colorJitter?: number;
  /** Sub-samples per pixel side for anti-aliased edges (default 4; 1 = hard edges). */
  antialias?: number;
  /** Minimum free pixels between shapes' bounding boxes and to the border (default 1). */
  minGap?: number;
  /** Salts every sample: two datasets with different seeds differ everywhere (default 0). */
  seed?: number;
}

export interface ResolvedShapesOptions {
  /** The square side when imageSizes was not given; otherwise the shortest side in imageSizes. */
  imageSize: number;
  /** Every size a sample may have (one entry: imageSize x imageSize unless imageSizes was given). */
  imageSizes: readonly ImageDims[];
  kinds: readonly ShapeKind[];
  colors: readonly ColorName[];
  shapesPerImage: Range;
  shapeSize: Range;
  backgroundLevel: Range;
  backgroundNoise: number;
  colorJitter: number;
  antialias: number;
  minGap: number;
  seed: number;
}

/** Fills defaults and checks every option; throws one error listing every problem. */
export function resolveShapesOptions(options: ShapesOptions = {}): ResolvedShapesOptions {
  const sizes = options.imageSizes?.map((d) => ({ width: d.width, height: d.height }));
  const imageSize = sizes && sizes.length > 0 ? Math.min(...sizes.flatMap((d) => [d.width, d.height])) : (options.imageSize ?? 32);
  const count = options.shapesPerImage ?? 1;
  const resolved: ResolvedShapesOptions = {
    imageSize,
    imageSizes: sizes ?? [{ width: imageSize, height: imageSize }],
    kinds: [...(options.kinds ?? SHAPE_KINDS)],
    colors: [...(options.colors ?? COLOR_NAMES)],
    shapesPerImage: typeof count === 'number' ? { min: count, max: count } : { ...count },
    shapeSize: options.shapeSize ? { ...options.shapeSize } : { min: 0.22 * imageSize, max: 0.45 * imageSize },
    backgroundLevel: options.backgroundLevel ? { ...options.backgroundLevel } : { min: 10, max: 50 },
    backgroundNoise: options.backgroundNoise ?? 6,
    colorJitter: options.colorJitter ?? 12,
    antialias: options.antialias ?? 4,
    minGap: options.minGap ?? 1,
    seed: options.seed ?? 0,
  };
  const problems = problemsOf(resolved);
  if (problems.length > 0) throw new Error(`shapes dataset options are invalid:\n  ${problems.join('\n  ')}`);
  return resolved;
}

function problemsOf(o: ResolvedShapesOptions): string[] {
  const problems: string[] = [];
  const isInt = (v: number) => Number.isInteger(v);
  if (o.imageSizes.length === 0) problems.push('imageSizes is empty; give at least one { width, height }, or omit it and set imageSize');
  for (const { width, height } of o.imageSizes) {
    if (!(isInt(width) && isInt(height) && width >= 8 && height >= 8)) {
      problems.push(
        o.imageSizes.length === 1 && width === height
          ? `imageSize must be an integer >= 8, got ${width}`
          : `image sizes must be integers >= 8 on each side, got ${width}x${height} (width x height)`,
      );
    }
  }
  if (o.kinds.length === 0) problems.push('kinds is empty; name at least one of ' + SHAPE_KINDS.join(', '));
  o.kinds.forEach((k) => {
    if (!isShapeKind(k)) problems.push(`kind '${String(k)}' is unknown; expected one of ${SHAPE_KINDS.join(', ')}`);
  });
  if (new Set(o.kinds).size !== o.kinds.length) problems.push(`kinds has duplicates: ${o.kinds.join(', ')}`);
  if (o.colors.length === 0) problems.push('colors is empty; name at least one of ' + COLOR_NAMES.join(', '));
  o.colors.forEach((c) => {
    if (!isColorName(c)) problems.push(`color '${String(c)}' is unknown; expected one of ${COLOR_NAMES.join(', ')}`);
  });
  if (new Set(o.colors).size !== o.colors.length) problems.push(`colors has duplicates: ${o.colors.join(', ')}`);
  const { min: nMin, max: nMax } = o.shapesPerImage;
  if (!(isInt(nMin) && isInt(nMax) && nMin >= 1 && nMax >= nMin && nMax <= 9)) {
    problems.push(`shapesPerImage must be integers with 1 <= min <= max <= 9, got ${nMin}..${nMax}`);
  }
  const { min: sMin, max: sMax } = o.shapeSize;
  if (!(sMin >= 3 && sMax > sMin)) problems.push(`shapeSize must satisfy 3 <= min < max (pixels), got ${sMin}..${sMax}`);
  if (!(o.minGap >= 0)) problems.push(`minGap must be >= 0, got ${o.minGap}`);
  if (sMax > o.imageSize - 2 * o.minGap) {
    problems.push(
      `shapeSize.max (${sMax}) must fit the image: at most the shortest image side - 2 * minGap = ${o.imageSize - 2 * o.minGap}`,
    );
  }
  const { min: bMin, max: bMax } = o.backgroundLevel;
  if (!(bMin >= 0 && bMax >= bMin && bMax <= 255)) problems.push(`backgroundLevel must satisfy 0 <= min <= max <= 255, got ${bMin}..${bMax}`);
  if (!(o.backgroundNoise >= 0 && o.backgroundNoise <= 64)) problems.push(`backgroundNoise must be in [0, 64], got ${o.backgroundNoise}`);
  if (!(o.colorJitter >= 0 && o.colorJitter <= 64)) problems.push(`colorJitter must be in [0, 64], got ${o.colorJitter}`);
  if (!(isInt(o.antialias) && o.antialias >= 1 && o.antialias <= 8)) problems.push(`antialias must be an integer in [1, 8], got ${o.antialias}`);
  if (!(isInt(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff)) problems.push(`seed must be an integer in [0, 2^32), got ${o.seed}`);
  return problems;
}
