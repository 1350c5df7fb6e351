// Lays images out in a captioned grid (nearest-neighbour upscaled), for a person to look at samples and a
// model's answers.
import type { RgbImage } from '@chimera/vision-encoder';
import { GLYPH_ADVANCE, GLYPH_HEIGHT, drawText, wrapText } from './font';

export interface GridTile {
  image: RgbImage;
  /** Caption lines under the image; each is word-wrapped to the tile width. */
  caption?: readonly string[];
  /** Caption colour (default light grey); e.g. green for a right answer, red for a wrong one. */
  captionColor?: readonly [number, number, number];
}

export interface GridOptions {
  /** Tiles per row (default: up to 8). */
  columns?: number;
  /** Integer upscaling of each image (default 4). */
  scale?: number;
  /** Pixels between and around tiles (default 6). */
  padding?: number;
  background?: readonly [number, number, number];
}

const LINE_HEIGHT = GLYPH_HEIGHT + 3;

export function imageGrid(tiles: readonly GridTile[], options: GridOptions = {}): RgbImage {
  if (tiles.length === 0) throw new Error('imageGrid: expected at least one tile');
  const scale = options.scale ?? 4;
  const padding = options.padding ?? 6;
  const columns = Math.min(options.columns ?? 8, tiles.length);
  if (!(Number.isInteger(scale) && scale >= 1)) throw new Error(`imageGrid: scale must be a positive integer, got ${scale}`);
  if (!(Number.isInteger(columns) && columns >= 1)) throw new Error(`imageGrid: columns must be a positive integer, got ${columns}`);
  const cellWidth = Math.max(...tiles.map((t) => t.image.width)) * scale;
  const imageHeight = Math.max(...tiles.map((t) => t.image.height)) * scale;
  const charsPerLine = Math.max(1, Math.floor((cellWidth + 1) / GLYPH_ADVANCE));
  const wrapped = tiles.map((t) => (t.caption ?? []).flatMap((line) => wrapText(line, charsPerLine)));
  const captionHeight = Math.max(0, ...wrapped.map((lines) => lines.length)) * LINE_HEIGHT;
  const cellHeight = imageHeight + (captionHeight > 0 ? captionHeight + 2 : 0);
  const rows = Math.ceil(tiles.length / columns);
  const width = padding + columns * (cellWidth + padding);
  const height = padding + rows * (cellHeight + padding);
  const background = options.background ?? [24, 24, 24];
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(background, i * 3);
  const grid: RgbImage = { data, width, height };
  tiles.forEach((tile, n) => {
    const left = padding + (n % columns) * (cellWidth + padding);
    const top = padding + Math.floor(n / columns) * (cellHeight + padding);
    blitScaled(grid, tile.image, left, top, scale);
    const color = tile.captionColor ?? [220, 220, 220];
    wrapped[n]!.forEach((line, k) => drawText(grid, line, left, top + imageHeight + 3 + k * LINE_HEIGHT, color));
  });
  return grid;
}

function blitScaled(target: RgbImage, source: RgbImage, left: number, top: number, scale: number): void {
  for (let y = 0; y < source.height * scale; y++) {
    for (let x = 0; x < source.width * scale; x++) {
      const from = (Math.floor(y / scale) * source.width + Math.floor(x / scale)) * 3;
      const to = ((top + y) * target.width + left + x) * 3;
      target.data[to] = source.data[from]!;
      target.data[to + 1] = source.data[from + 1]!;
      target.data[to + 2] = source.data[from + 2]!;
    }
  }
}
