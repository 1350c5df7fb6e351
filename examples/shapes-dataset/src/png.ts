// PNG output for RgbImage (pngjs), kept out of the main entry so consumers that only need samples do not load it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import type { RgbImage } from '@chimera/vision-encoder';

export function encodePng(image: RgbImage): Buffer {
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw new Error(`encodePng: expected ${width}x${height}x3 = ${width * height * 3} bytes of RGB, got ${data.length}`);
  }
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = data[i * 3]!;
    png.data[i * 4 + 1] = data[i * 3 + 1]!;
    png.data[i * 4 + 2] = data[i * 3 + 2]!;
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

/** Writes the image as a PNG, creating the folder if needed. */
export function writePng(path: string, image: RgbImage): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePng(image));
}
