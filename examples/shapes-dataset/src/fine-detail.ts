// The fine-detail task shared by the high-resolution examples (fuyu, qwen2-vl, nvlm-h): images of 96-144 pixels
// a side, in several aspect ratios, holding a few shapes of 8-14 pixels. A shape's kind shows only at full
// resolution: a thumbnail of the whole image at a quarter of its side turns every shape into a 2-3 pixel blob of
// its colour, so questions that name or ask for a kind ('shape', 'color', 'left-of', 'count') need the detail.
import type { ImageDims, ShapesOptions } from './options';
import type { QuestionType } from './questions';

/** The sizes training images are drawn from (width x height). */
export const FINE_DETAIL_SEEN_SIZES: readonly ImageDims[] = [
  { width: 96, height: 96 },
  { width: 128, height: 96 },
  { width: 96, height: 128 },
  { width: 128, height: 128 },
];

/** Sizes and aspect ratios no training image has: the generalisation test of native-resolution models. */
export const FINE_DETAIL_UNSEEN_SIZES: readonly ImageDims[] = [
  { width: 112, height: 112 },
  { width: 144, height: 96 },
  { width: 96, height: 144 },
];

/** Shape sides in pixels, whatever the image size (small 8-10.4, large 11.6-14). */
export const FINE_DETAIL_SHAPE_SIZE = { min: 8, max: 14 } as const;

/** The question types whose answer needs a shape's kind, which a thumbnail cannot show. */
export const FINE_DETAIL_TYPES: readonly QuestionType[] = ['shape', 'color', 'left-of', 'count'];

/** Options of {@link fineDetailOptions}: which sizes, plus any dataset option to override. */
export interface FineDetailOptions extends Omit<ShapesOptions, 'imageSizes' | 'imageSize'> {
  /** 'seen' (default), 'unseen', 'all', or an explicit list. */
  sizes?: 'seen' | 'unseen' | 'all' | readonly ImageDims[];
}

/** Dataset options of the fine-detail task; pass them to `new ShapesDataset(...)`. */
export function fineDetailOptions(options: FineDetailOptions = {}): ShapesOptions {
  const { sizes = 'seen', ...rest } = options;
  const imageSizes =
    sizes === 'seen'
      ? FINE_DETAIL_SEEN_SIZES
      : sizes === 'unseen'
        ? FINE_DETAIL_UNSEEN_SIZES
        : sizes === 'all'
          ? [...FINE_DETAIL_SEEN_SIZES, ...FINE_DETAIL_UNSEEN_SIZES]
          : sizes;
  if (typeof sizes === 'string' && !['seen', 'unseen', 'all'].includes(sizes)) {
    throw new Error(`fineDetailOptions: sizes must be 'seen', 'unseen', 'all' or a list of { width, height }, got '${sizes}'`);
  }
  return { shapeSize: { ...FINE_DETAIL_SHAPE_SIZE }, shapesPerImage: { min: 1, max: 3 }, minGap: 2, ...rest, imageSizes };
}

/** "128x96": how scores by image size name a size. */
export function sizeKey(dims: ImageDims): string {
  return `${dims.width}x${dims.height}`;
}
