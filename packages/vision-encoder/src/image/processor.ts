/**
 * The preprocessing pipeline HF image processors run, deterministic and in pure JS: pixel cap -> optional pad to
 * square -> resize (shortest edge or exact size) -> center crop -> rescale and normalise -> float32 [H, W, 3].
 * `outputSize` computes the final size from the input size alone with the same rules, so token counts can be
 * known without touching pixels.
 */
import type * as tf from '@tensorflow/tfjs';
import { centerCrop, padToSquare } from './crop-pad';
import { decodeImageSync, DEFAULT_MAX_PIXELS, type DecodeOptions } from './decode';
import { ImageInputError } from './errors';
import { imagesToTensor, imageToTensor, meanColor, resolveNormalization, type Normalization } from './normalize';
import { assertRgbImage, checkColor, checkSize, type AlphaBackground } from './pixels';
import { resizeImage, type ResizeFilter } from './resize';
import { checkPositiveInteger, fitWithinPixels, shortestEdgeSize, type ImageSize } from './sizing';
import type { RgbColor, RgbImage } from './types';

/** What the processor accepts: a decoded image, PNG/JPEG bytes, or a file path. */
export type ImageInput = RgbImage | Uint8Array | string;

/** Resize so the shorter side is `shortestEdge` (aspect kept), or to exactly `width` x `height`. */
export type ResizeSpec = { shortestEdge: number } | { width: number; height: number };

/** Options of {@link ImageProcessor}: normalisation, resize, crop, padding and the decoding limits. */
export interface ImageProcessorOptions {
  /** Normalisation preset name or statistics. */
  preset: Normalization;
  /** Omitted: keep the (capped) input size. */
  resize?: ResizeSpec;
  /** Resampling filter (default 'bicubic', as HF CLIP and SigLIP processors). */
  filter?: ResizeFilter;
  /** Center crop after resizing; pads with black when the crop is larger than the image. */
  crop?: ImageSize;
  /** Pad to a square before resizing: true uses the preset's mean colour (LLaVA), or give a colour. */
  padToSquare?: boolean | RgbColor;
  /** Multiplier before normalising (default 1/255). */
  rescale?: number;
  /** Pixel cap on the input (default DEFAULT_MAX_PIXELS); checked from the header for bytes and paths. */
  maxPixels?: number;
  /** Over the cap: 'error' (default) or 'resize' (shrink to fit, aspect kept, before anything else). */
  onOversize?: 'error' | 'resize';
  /** Decoding only: ceiling for `onOversize: 'resize'` (see DecodeOptions). */
  maxDecodePixels?: number;
  /** Decoding only: memory budget of one decode in bytes (default DEFAULT_MAX_DECODE_BYTES, 256 MiB; see DecodeOptions). */
  maxDecodeBytes?: number;
  /** Decoding only: colour alpha is composited on (default white), or 'ignore'. */
  background?: AlphaBackground;
}

/**
 * The preprocessing pipeline HF image processors run, in pure JS and deterministic: pixel cap, optional pad to
 * square, resize, center crop, rescale and normalise to float32 [H, W, 3]. `outputSize` gives the final size from the
 * input size alone.
 */
export class ImageProcessor {
  /** The options it was built with. */
  readonly options: Readonly<ImageProcessorOptions>;
  private readonly padFill: RgbColor | null;

  constructor(options: ImageProcessorOptions) {
    resolveNormalization(options.preset);
    const resize = options.resize;
    if (resize) {
      if ('shortestEdge' in resize) checkPositiveInteger(resize.shortestEdge, 'ImageProcessor resize.shortestEdge');
      else if (resize && 'width' in resize) checkSize(resize.width, resize.height, 'ImageProcessor resize');
      else {
        throw new ImageInputError(
          'bad-pixels',
          `ImageProcessor: resize must be { shortestEdge } or { width, height }, got ${JSON.stringify(resize)}`,
        );
      }
    }
    if (options.crop) checkSize(options.crop.width, options.crop.height, 'ImageProcessor crop');
    if (options.maxPixels !== undefined) checkPositiveInteger(options.maxPixels, 'ImageProcessor maxPixels');
    if (options.filter !== undefined && options.filter !== 'bilinear' && options.filter !== 'bicubic') {
      throw new ImageInputError('bad-pixels', `ImageProcessor: filter must be 'bilinear' or 'bicubic', got '${String(options.filter)}'`);
    }
    if (options.onOversize !== undefined && options.onOversize !== 'error' && options.onOversize !== 'resize') {
      throw new ImageInputError('bad-pixels', `ImageProcessor: onOversize must be 'error' or 'resize', got '${String(options.onOversize)}'`);
    }
    this.padFill =
      options.padToSquare === true
        ? meanColor(options.preset)
        : options.padToSquare
          ? checkColor(options.padToSquare, 'ImageProcessor padToSquare')
          : null;
    this.options = { ...options };
  }

  private get maxPixels(): number {
    return this.options.maxPixels ?? DEFAULT_MAX_PIXELS;
  }

  /** Decodes bytes or a path with this processor's cap and alpha settings; an RgbImage is checked and passed on. */
  load(input: ImageInput): RgbImage {
    if (typeof input === 'string' || input instanceof Uint8Array) {
      const decodeOptions: DecodeOptions = {
        maxPixels: this.maxPixels,
        onOversize: this.options.onOversize,
        maxDecodePixels: this.options.maxDecodePixels,
        maxDecodeBytes: this.options.maxDecodeBytes,
        filter: this.options.filter,
        background: this.options.background,
      };
      return decodeImageSync(input, decodeOptions);
    }
    assertRgbImage(input, 'ImageProcessor input');
    return input;
  }

  /** The size `prepare` produces for an input of `width` x `height` (throws as `prepare` would for the cap). */
  outputSize(width: number, height: number): ImageSize {
    checkSize(width, height, 'ImageProcessor.outputSize');
    let size = this.capSize(width, height);
    if (this.padFill) {
      const side = Math.max(size.width, size.height);
      size = { width: side, height: side };
    }
    size = this.resizeTarget(size);
    return this.options.crop ? { width: this.options.crop.width, height: this.options.crop.height } : size;
  }

  /** Loads the input and applies cap, pad, resize and crop: the 8-bit image the tensor will hold. */
  prepare(input: ImageInput): RgbImage {
    let image = this.load(input);
    const capped = this.capSize(image.width, image.height);
    if (capped.width !== image.width || capped.height !== image.height) {
      image = resizeImage(image, capped.width, capped.height, this.filter);
    }
    if (this.padFill) image = padToSquare(image, this.padFill);
    const target = this.resizeTarget(image);
    if (target.width !== image.width || target.height !== image.height) {
      image = resizeImage(image, target.width, target.height, this.filter);
    }
    if (this.options.crop) image = centerCrop(image, this.options.crop.width, this.options.crop.height);
    return image;
  }

  /** The normalised float32 [H, W, 3] tensor of one input. */
  process(input: ImageInput): tf.Tensor3D {
    return imageToTensor(this.prepare(input), this.options.preset, this.options.rescale);
  }

  /** The normalised float32 [B, H, W, 3] batch; all inputs must come out the same size (set resize + crop). */
  processBatch(inputs: readonly ImageInput[]): tf.Tensor4D {
    if (!Array.isArray(inputs) || inputs.length === 0) {
      throw new ImageInputError('bad-pixels', 'ImageProcessor.processBatch: expected a non-empty array of images');
    }
    return imagesToTensor(inputs.map((input) => this.prepare(input)), this.options.preset, this.options.rescale);
  }

  private get filter(): ResizeFilter {
    return this.options.filter ?? 'bicubic';
  }

  private capSize(width: number, height: number): ImageSize {
    const maxPixels = this.maxPixels;
    if (width * height <= maxPixels) return { width, height };
    if (this.options.onOversize === 'resize') return fitWithinPixels(width, height, maxPixels);
    throw new ImageInputError(
      'too-large',
      `ImageProcessor: the image is ${width}x${height} = ${width * height} pixels, over maxPixels ${maxPixels}; ` +
        "raise maxPixels or pass onOversize: 'resize' to shrink it",
    );
  }

  private resizeTarget(size: ImageSize): ImageSize {
    const resize = this.options.resize;
    if (!resize) return size;
    if ('shortestEdge' in resize) return shortestEdgeSize(size.width, size.height, resize.shortestEdge);
    return { width: resize.width, height: resize.height };
  }
}

/** Options a preset builder takes: the square size plus any processor option to override. */
export type PresetProcessorOptions = Partial<ImageProcessorOptions> & { size?: number };

/** OpenAI CLIP: shortest edge `size` (224) bicubic, center crop `size` x `size`, CLIP statistics. */
export function clipProcessor(options: PresetProcessorOptions = {}): ImageProcessor {
  const { size = 224, ...rest } = options;
  return new ImageProcessor({
    preset: 'clip',
    resize: { shortestEdge: size },
    filter: 'bicubic',
    crop: { width: size, height: size },
    ...rest,
  });
}

/** SigLIP: exact `size` x `size` (224) bicubic resize without crop (HF SiglipImageProcessor), mean = std = 0.5. */
export function siglipProcessor(options: PresetProcessorOptions = {}): ImageProcessor {
  const { size = 224, ...rest } = options;
  return new ImageProcessor({ preset: 'siglip', resize: { width: size, height: size }, filter: 'bicubic', ...rest });
}

/** LLaVA-1.5 ("pad" aspect mode): pad to square with the CLIP mean colour, then the CLIP pipeline at `size` (336). */
export function llavaProcessor(options: PresetProcessorOptions = {}): ImageProcessor {
  const { size = 336, ...rest } = options;
  return clipProcessor({ size, padToSquare: true, ...rest });
}
