// Native-resolution input (Qwen2-VL): an image keeps its own size, so one with a side shorter than the tower's
// patch is refused with what to do, rather than upscaled into patches of invented pixels.
import { describe, it, expect, beforeAll } from 'vitest';
import { setupTestBackend } from '@chimera/core/testing';
import { visionModality } from '../src/modality';
import { VisionTransformer } from '../src/vit/tower';
import { tinyViT } from '../src/vit/config';
import { ImageInputError } from '../src/image/errors';
import type { RgbImage } from '../src/image/types';

function grey(width: number, height: number): RgbImage {
  return { data: new Uint8Array(width * height * 3).fill(128), width, height };
}

describe("'native' mode input sizes (cpu)", () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('refuses an image with a side under one patch, naming the size, the patch and the fix', () => {
    const encoder = new VisionTransformer(tinyViT({ patchSize: 8, imageSize: 16, positions: 'rope2d' }));
    const plugin = visionModality({ mode: 'native', encoder, minPixels: 64, maxPixels: 64 * 64 });
    expect(() => plugin.prepare(grey(30, 7))).toThrow(
      /mode 'native'\): the image is 30x7 \(width x height\), smaller than one 8x8 patch of the tower.*at least 8 pixels: upscale or pad/,
    );
    expect(() => plugin.prepare(grey(3, 40))).toThrow(ImageInputError);
    expect(() => plugin.prepare(grey(1, 1))).toThrow(/1x1/);
    // One patch a side is enough: smart resize rounds it up to the merge window (16x16 here), a 2x2 patch grid.
    const smallest = plugin.prepare(grey(8, 8));
    expect(smallest).toMatchObject({ width: 16, height: 16, sourceWidth: 8, sourceHeight: 8 });
    expect(plugin.tokensFor(smallest)).toBe(1);
    expect(plugin.prepare(grey(9, 20))).toMatchObject({ sourceWidth: 9, sourceHeight: 20 });
    encoder.dispose();
  });
});
